"""Unit tests for app/domain/crypto.py: tokens, key derivation, the envelope and the STREAM blob."""

from __future__ import annotations

import base64
import json
import os
import re

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from onetimeshare.domain.crypto import (
    BLOB_HEADER_BYTES,
    BLOB_MAGIC,
    BLOB_VERSION,
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    TAG_BYTES,
    TOKEN_BYTES,
    Argon2Params,
    DecryptionError,
    Envelope,
    EnvelopeBinding,
    InvalidToken,
    StreamOpener,
    StreamSealer,
    blob_header,
    decode_token,
    derive,
    encode_token,
    key_encryption_key,
    new_token,
    open_envelope,
    open_ticket,
    seal_envelope,
    seal_ticket,
    share_id_for,
    ticket_id,
)
from tests.helpers import BASE64URL_ALPHABET
from tests.sealing import ciphertext_size, open_bytes, seal_bytes

SMALL_CHUNK = 1024
TINY_ARGON2 = Argon2Params(time_cost=1, memory_kib=64, parallelism=1)
BINDING = EnvelopeBinding("file", 1234, None)


@pytest.fixture
def file_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def share_id() -> str:
    return share_id_for(new_token())


def sizes_for(chunk: int) -> list[int]:
    return [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk]


def split_blob(blob: bytes, chunk_size: int) -> tuple[bytes, list[bytes]]:
    """The header and the sealed chunks of a blob, as stored on disk."""
    header, body = blob[:BLOB_HEADER_BYTES], blob[BLOB_HEADER_BYTES:]
    sealed = chunk_size + TAG_BYTES
    return header, [body[i : i + sealed] for i in range(0, len(body), sealed)]


def flip_bit(data: bytes, index: int, bit: int = 0) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 1 << bit
    return bytes(changed)


# --- tokens -------------------------------------------------------------------


def test_new_token_is_random_32_bytes() -> None:
    first, second = new_token(), new_token()
    assert len(first) == TOKEN_BYTES
    assert len(second) == TOKEN_BYTES
    assert first != second


@pytest.mark.parametrize(
    "token",
    [bytes(32), b"\xff" * 32, bytes(range(32)), os.urandom(32), os.urandom(32)],
    ids=["zeros", "ones", "counting", "random1", "random2"],
)
def test_token_round_trip(token: bytes) -> None:
    text = encode_token(token)
    assert len(text) == 43
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", text)
    assert decode_token(text) == token


def test_encode_token_is_unpadded_base64url() -> None:
    token = b"\xfb\xff" * 16  # produces '-' and '_' in base64url, '+' and '/' in base64
    text = encode_token(token)
    assert "=" not in text
    assert "+" not in text
    assert "/" not in text
    assert base64.urlsafe_b64decode(text + "=") == token


def test_invalid_token_is_a_value_error() -> None:
    assert issubclass(InvalidToken, ValueError)


def test_a_refused_token_is_not_repeated_in_the_exception() -> None:
    """Exception messages reach logs; a near-miss link is still a secret."""
    almost = encode_token(os.urandom(32)) + "="
    with pytest.raises(InvalidToken) as refused:
        decode_token(almost)
    assert almost[:40] not in str(refused.value) and almost[:40] not in repr(refused.value)


@pytest.mark.parametrize("length", [0, 1, 42, 44, 64])
def test_decode_token_rejects_wrong_length(length: int) -> None:
    text = (encode_token(os.urandom(32)) * 2)[:length]
    with pytest.raises(InvalidToken):
        decode_token(text)


def test_decode_token_rejects_padded_canonical_token() -> None:
    with pytest.raises(InvalidToken):
        decode_token(encode_token(os.urandom(32)) + "=")


@pytest.mark.parametrize("bad", ["+", "/", "=", " ", "\n", "\t", "\u00e9", "\u0410", "\uff21", "."])
@pytest.mark.parametrize("position", [0, 20, 42])
def test_decode_token_rejects_characters_outside_base64url(bad: str, position: int) -> None:
    text = encode_token(bytes(32))
    changed = text[:position] + bad + text[position + 1 :]
    assert len(changed) == 43
    with pytest.raises(InvalidToken):
        decode_token(changed)


def test_decode_token_rejects_trailing_newline() -> None:
    with pytest.raises(InvalidToken):
        decode_token(encode_token(os.urandom(32)) + "\n")


@pytest.mark.parametrize("token", [bytes(32), b"\xff" * 32, os.urandom(32)])
@pytest.mark.parametrize("low_bits", [1, 2, 3])
def test_decode_token_rejects_non_canonical_last_character(token: bytes, low_bits: int) -> None:
    text = encode_token(token)
    index = BASE64URL_ALPHABET.index(text[-1])
    assert index & 0b11 == 0, "a canonical 43-char token leaves the last 2 bits zero"
    changed = text[:-1] + BASE64URL_ALPHABET[index | low_bits]
    assert changed != text
    # The altered text decodes to the same bytes under lenient base64: that is the danger.
    assert base64.urlsafe_b64decode(changed + "=") == token
    with pytest.raises(InvalidToken):
        decode_token(changed)


# --- key derivation -----------------------------------------------------------


def test_share_id_is_deterministic_32_hex_chars() -> None:
    token = new_token()
    share_id = share_id_for(token)
    assert re.fullmatch(r"[0-9a-f]{32}", share_id)
    assert share_id_for(token) == share_id


def test_share_id_differs_between_tokens() -> None:
    ids = {share_id_for(new_token()) for _ in range(20)}
    assert len(ids) == 20


def test_share_id_is_not_the_token() -> None:
    token = new_token()
    assert share_id_for(token) != token[:16].hex()
    assert token.hex()[:32] != share_id_for(token)


def test_derive_is_deterministic_and_label_separated() -> None:
    secret = os.urandom(32)
    assert derive(secret, "kek") == derive(secret, "kek")
    keys = {derive(secret, label) for label in ["kek", "share-id", "kek+password", "other"]}
    assert len(keys) == 4
    assert all(len(key) == 32 for key in keys)


def test_derive_honours_length_and_secret() -> None:
    secret = os.urandom(32)
    assert len(derive(secret, "x", 16)) == 16
    assert derive(secret, "x") != derive(os.urandom(32), "x")


def test_key_encryption_key_depends_on_password_hash() -> None:
    token = new_token()
    plain = key_encryption_key(token, None)
    hash_a = TINY_ARGON2.hash(b"correct horse", b"0123456789abcdef")
    hash_b = TINY_ARGON2.hash(b"battery staple", b"0123456789abcdef")
    protected_a = key_encryption_key(token, hash_a)
    protected_b = key_encryption_key(token, hash_b)
    assert len(plain) == len(protected_a) == len(protected_b) == 32
    assert len({plain, protected_a, protected_b}) == 3
    assert key_encryption_key(token, None) == plain
    assert key_encryption_key(token, hash_a) == protected_a
    assert key_encryption_key(new_token(), None) != plain
    assert key_encryption_key(new_token(), hash_a) != protected_a


# --- Argon2 -------------------------------------------------------------------


def test_argon2_hash_is_deterministic() -> None:
    salt = os.urandom(16)
    first = TINY_ARGON2.hash(b"hunter2", salt)
    assert len(first) == 32
    assert TINY_ARGON2.hash(b"hunter2", salt) == first


def test_argon2_hash_depends_on_salt_password_and_params() -> None:
    salt = b"s" * 16
    base = TINY_ARGON2.hash(b"hunter2", salt)
    assert TINY_ARGON2.hash(b"hunter2", b"t" * 16) != base
    assert TINY_ARGON2.hash(b"hunter3", salt) != base
    assert TINY_ARGON2.hash(b"", salt) != base
    assert Argon2Params(time_cost=2, memory_kib=64, parallelism=1).hash(b"hunter2", salt) != base
    assert Argon2Params(time_cost=1, memory_kib=128, parallelism=1).hash(b"hunter2", salt) != base


# --- the envelope ---------------------------------------------------------------


@pytest.fixture
def envelope() -> Envelope:
    return Envelope(
        file_key=os.urandom(32),
        name='R\u00e9sum\u00e9 \u65e5\u672c\u8a9e \U0001f389 "q" \\ \u202e.pdf',
        content_type="application/pdf",
    )


def test_envelope_round_trip(envelope: Envelope, share_id: str) -> None:
    kek = key_encryption_key(new_token(), None)
    sealed = seal_envelope(kek, share_id, envelope, BINDING)
    assert envelope.name.encode("utf-8") not in sealed
    assert envelope.file_key not in sealed
    opened = open_envelope(kek, share_id, sealed, BINDING)
    assert opened == envelope


def test_envelope_round_trip_with_password(envelope: Envelope, share_id: str) -> None:
    kek = key_encryption_key(new_token(), TINY_ARGON2.hash(b"pw", b"saltsaltsaltsalt"))
    assert (
        open_envelope(kek, share_id, seal_envelope(kek, share_id, envelope, BINDING), BINDING)
        == envelope
    )


def test_envelope_sealing_uses_a_fresh_nonce(envelope: Envelope, share_id: str) -> None:
    kek = key_encryption_key(new_token(), None)
    assert seal_envelope(kek, share_id, envelope, BINDING) != seal_envelope(
        kek, share_id, envelope, BINDING
    )


def test_envelope_does_not_open_with_another_tokens_kek(envelope: Envelope, share_id: str) -> None:
    sealed = seal_envelope(key_encryption_key(new_token(), None), share_id, envelope, BINDING)
    with pytest.raises(DecryptionError):
        open_envelope(key_encryption_key(new_token(), None), share_id, sealed, BINDING)


def test_envelope_does_not_open_with_another_password(envelope: Envelope, share_id: str) -> None:
    token = new_token()
    salt = os.urandom(16)
    right = key_encryption_key(token, TINY_ARGON2.hash(b"right", salt))
    wrong = key_encryption_key(token, TINY_ARGON2.hash(b"wrong", salt))
    sealed = seal_envelope(right, share_id, envelope, BINDING)
    with pytest.raises(DecryptionError):
        open_envelope(wrong, share_id, sealed, BINDING)
    # Nor without the password at all.
    with pytest.raises(DecryptionError):
        open_envelope(key_encryption_key(token, None), share_id, sealed, BINDING)


def test_envelope_does_not_open_under_another_share_id(envelope: Envelope, share_id: str) -> None:
    kek = key_encryption_key(new_token(), None)
    sealed = seal_envelope(kek, share_id, envelope, BINDING)
    with pytest.raises(DecryptionError):
        open_envelope(kek, share_id_for(new_token()), sealed, BINDING)


def test_envelope_any_flipped_byte_fails(envelope: Envelope, share_id: str) -> None:
    kek = key_encryption_key(new_token(), None)
    sealed = seal_envelope(kek, share_id, envelope, BINDING)
    for index in range(len(sealed)):
        for bit in (0, 7):
            with pytest.raises(DecryptionError):
                open_envelope(kek, share_id, flip_bit(sealed, index, bit), BINDING)


def test_envelope_truncated_or_extended_fails(envelope: Envelope, share_id: str) -> None:
    kek = key_encryption_key(new_token(), None)
    sealed = seal_envelope(kek, share_id, envelope, BINDING)
    for cut in [0, 1, 12, 13, 28, len(sealed) - 1]:
        with pytest.raises(DecryptionError):
            open_envelope(kek, share_id, sealed[:cut], BINDING)
    with pytest.raises(DecryptionError):
        open_envelope(kek, share_id, sealed + b"\x00", BINDING)


def test_envelope_is_bound_to_kind_size_and_argon2_parameters(
    envelope: Envelope, share_id: str
) -> None:
    """A rewritten record (kind, size, password cost) no longer opens the envelope."""
    kek = key_encryption_key(new_token(), None)
    protected = EnvelopeBinding("file", 1234, TINY_ARGON2)
    sealed = seal_envelope(kek, share_id, envelope, protected)
    assert open_envelope(kek, share_id, sealed, protected) == envelope
    for rewritten in (
        EnvelopeBinding("text", 1234, TINY_ARGON2),
        EnvelopeBinding("file", 1235, TINY_ARGON2),
        EnvelopeBinding("file", 1234, None),
        EnvelopeBinding("file", 1234, Argon2Params(time_cost=2, memory_kib=64, parallelism=1)),
        EnvelopeBinding("file", 1234, Argon2Params(time_cost=1, memory_kib=128, parallelism=1)),
        EnvelopeBinding("file", 1234, Argon2Params(time_cost=1, memory_kib=64, parallelism=2)),
    ):
        with pytest.raises(DecryptionError):
            open_envelope(kek, share_id, sealed, rewritten)
    assert sealed[:1] == b"\x02"


def test_version_1_envelopes_still_open(envelope: Envelope, share_id: str) -> None:
    """Shares made before the binding (envelope version 1) stay readable after an upgrade."""
    kek = key_encryption_key(new_token(), None)
    payload = json.dumps(
        {
            "k": base64.b64encode(envelope.file_key).decode(),
            "n": envelope.name,
            "t": "application/pdf",
        }
    ).encode()
    nonce = os.urandom(12)
    aad = b"onetimeshare envelope v1:" + share_id.encode()
    sealed = b"\x01" + nonce + ChaCha20Poly1305(kek).encrypt(nonce, payload, aad)
    # Version 1 binds only the share id: any binding opens it, another share id does not.
    assert open_envelope(kek, share_id, sealed, EnvelopeBinding("text", 0, None)) == envelope
    with pytest.raises(DecryptionError):
        open_envelope(kek, share_id_for(new_token()), sealed, BINDING)


def test_unknown_envelope_versions_are_refused(envelope: Envelope, share_id: str) -> None:
    kek = key_encryption_key(new_token(), None)
    sealed = seal_envelope(kek, share_id, envelope, BINDING)
    for version in (b"\x00", b"\x03", b"\xff"):
        with pytest.raises(DecryptionError):
            open_envelope(kek, share_id, version + sealed[1:], BINDING)


def test_a_ticket_opens_only_with_itself_for_its_share_and_purpose(share_id: str) -> None:
    ticket = new_token()
    sealed = seal_ticket(ticket, "unlock", share_id, b"argon2 output")
    assert b"argon2 output" not in sealed
    assert open_ticket(ticket, "unlock", share_id, sealed) == b"argon2 output"
    for wrong_ticket, purpose, share in (
        (new_token(), "unlock", share_id),
        (ticket, "claim", share_id),
        (ticket, "unlock", share_id_for(new_token())),
    ):
        with pytest.raises(DecryptionError):
            open_ticket(wrong_ticket, purpose, share, sealed)
    with pytest.raises(DecryptionError):
        open_ticket(ticket, "unlock", share_id, flip_bit(sealed, 20, 0))
    # Its Redis name says nothing about the key it carries, and differs per purpose.
    assert ticket_id(ticket, "unlock") != ticket_id(ticket, "claim")
    assert len(ticket_id(ticket, "unlock")) == 32


# --- the blob: round trips ---------------------------------------------------------


def test_blob_header_layout() -> None:
    header = blob_header(SMALL_CHUNK)
    assert len(header) == BLOB_HEADER_BYTES == 9
    assert header[:4] == BLOB_MAGIC
    assert header[4] == BLOB_VERSION
    assert int.from_bytes(header[5:9], "big") == SMALL_CHUNK


@pytest.mark.parametrize("size", sizes_for(SMALL_CHUNK))
def test_seal_open_bytes_round_trip_small_chunks(size: int, file_key: bytes, share_id: str) -> None:
    plaintext = os.urandom(size)
    blob = seal_bytes(file_key, share_id, plaintext, SMALL_CHUNK)
    assert len(blob) == ciphertext_size(size, SMALL_CHUNK)
    assert blob[:BLOB_HEADER_BYTES] == blob_header(SMALL_CHUNK)
    assert open_bytes(file_key, share_id, blob) == plaintext


@pytest.mark.parametrize("size", sizes_for(DEFAULT_CHUNK_SIZE))
def test_seal_open_bytes_round_trip_default_chunks(
    size: int, file_key: bytes, share_id: str
) -> None:
    plaintext = os.urandom(size)
    blob = seal_bytes(file_key, share_id, plaintext)
    assert len(blob) == ciphertext_size(size, DEFAULT_CHUNK_SIZE)
    assert blob[:BLOB_HEADER_BYTES] == blob_header(DEFAULT_CHUNK_SIZE)
    assert open_bytes(file_key, share_id, blob) == plaintext


@pytest.mark.parametrize("chunk", [SMALL_CHUNK, DEFAULT_CHUNK_SIZE])
@pytest.mark.parametrize("size", [1, 100, 1023, 1024, 1025, 3 * 1024 + 7])
def test_sealed_chunk_layout_on_disk(chunk: int, size: int, file_key: bytes, share_id: str) -> None:
    plaintext = os.urandom(size)
    blob = seal_bytes(file_key, share_id, plaintext, chunk)
    _header, chunks = split_blob(blob, chunk)
    assert len(chunks) == max(1, -(-size // chunk))
    for sealed in chunks[:-1]:
        assert len(sealed) == chunk + TAG_BYTES
    assert len(chunks[-1]) == size - (len(chunks) - 1) * chunk + TAG_BYTES


def test_empty_plaintext_is_one_empty_chunk(file_key: bytes, share_id: str) -> None:
    blob = seal_bytes(file_key, share_id, b"", SMALL_CHUNK)
    assert len(blob) == BLOB_HEADER_BYTES + TAG_BYTES
    assert ciphertext_size(0, SMALL_CHUNK) == len(blob)
    assert open_bytes(file_key, share_id, blob) == b""


def test_ciphertext_size_formula() -> None:
    assert ciphertext_size(0, 10) == BLOB_HEADER_BYTES + 16
    assert ciphertext_size(1, 10) == BLOB_HEADER_BYTES + 1 + 16
    assert ciphertext_size(10, 10) == BLOB_HEADER_BYTES + 10 + 16
    assert ciphertext_size(11, 10) == BLOB_HEADER_BYTES + 11 + 32
    assert ciphertext_size(30, 10) == BLOB_HEADER_BYTES + 30 + 48


def test_blob_does_not_contain_plaintext(file_key: bytes, share_id: str) -> None:
    plaintext = b"very secret plaintext " * 200
    blob = seal_bytes(file_key, share_id, plaintext, SMALL_CHUNK)
    assert b"very secret" not in blob


def seal_in_batches(
    sealer: StreamSealer, plaintext: bytes, batch_sizes: list[int] | None = None
) -> bytes:
    """Seal with non-final whole-chunk batches, holding at least one byte back for the final."""
    out = [sealer.header]
    position = 0
    sizes = iter(batch_sizes or [])
    while True:
        batch = next(sizes, sealer.batch_bytes)
        if len(plaintext) - position <= batch:
            break
        # The returned view is only valid until the next call: copy it now.
        out.append(bytes(sealer.seal(plaintext[position : position + batch], final=False)))
        position += batch
    out.append(bytes(sealer.seal(plaintext[position:], final=True)))
    return b"".join(out)


def open_in_batches(
    file_key: bytes, share_id: str, blob: bytes, batch_chunks: int = 16
) -> tuple[bytes, StreamOpener]:
    opener = StreamOpener(
        file_key, share_id, blob[:BLOB_HEADER_BYTES], len(blob), batch_chunks=batch_chunks
    )
    body = memoryview(blob)[BLOB_HEADER_BYTES:]
    step = opener.batch_ciphertext_bytes
    parts = [bytes(opener.open(body[i : i + step])) for i in range(0, len(body), step)]
    return b"".join(parts), opener


MIB = 1024 * 1024


@pytest.mark.parametrize("size", [3 * MIB, 5 * MIB + 123, 4 * MIB - 1])
def test_stream_round_trip_several_mib(size: int, file_key: bytes, share_id: str) -> None:
    plaintext = os.urandom(size)
    sealer = StreamSealer(file_key, share_id)
    assert sealer.chunk_size == DEFAULT_CHUNK_SIZE
    assert sealer.batch_bytes == 16 * DEFAULT_CHUNK_SIZE
    blob = seal_in_batches(sealer, plaintext)
    assert len(blob) == ciphertext_size(size, DEFAULT_CHUNK_SIZE)
    # The whole-buffer helper produces the same bytes as the batched sealer.
    assert blob == seal_bytes(file_key, share_id, plaintext)

    opened, opener = open_in_batches(file_key, share_id, blob)
    assert opener.batch_ciphertext_bytes == 16 * (DEFAULT_CHUNK_SIZE + TAG_BYTES)
    assert opener.plaintext_size == size
    assert opener.chunk_count == -(-size // DEFAULT_CHUNK_SIZE)
    assert opener.finished
    assert opened == plaintext
    assert open_bytes(file_key, share_id, blob) == plaintext


def test_stream_uneven_whole_chunk_batches(file_key: bytes, share_id: str) -> None:
    """Batches of 1, 3 and 40 chunks (bigger than the output buffer) still round trip."""
    chunk = SMALL_CHUNK
    plaintext = os.urandom(60 * chunk + 5)
    sealer = StreamSealer(file_key, share_id, chunk, batch_chunks=4)
    blob = seal_in_batches(sealer, plaintext, [chunk, 3 * chunk, 40 * chunk, chunk])
    assert len(blob) == ciphertext_size(len(plaintext), chunk)
    assert blob == seal_bytes(file_key, share_id, plaintext, chunk)
    for batch_chunks in (1, 3, 16, 100):
        opened, opener = open_in_batches(file_key, share_id, blob, batch_chunks)
        assert opened == plaintext
        assert opener.finished


@pytest.mark.parametrize("size", sizes_for(SMALL_CHUNK))
def test_stream_small_chunks_batched(size: int, file_key: bytes, share_id: str) -> None:
    plaintext = os.urandom(size)
    sealer = StreamSealer(file_key, share_id, SMALL_CHUNK, batch_chunks=1)
    blob = seal_in_batches(sealer, plaintext)
    assert len(blob) == ciphertext_size(size, SMALL_CHUNK)
    opened, opener = open_in_batches(file_key, share_id, blob, batch_chunks=1)
    assert opened == plaintext
    assert opener.finished


def test_stream_final_batch_of_whole_chunks(file_key: bytes, share_id: str) -> None:
    plaintext = os.urandom(4 * SMALL_CHUNK)
    sealer = StreamSealer(file_key, share_id, SMALL_CHUNK)
    first = bytes(sealer.seal(plaintext[: 2 * SMALL_CHUNK], final=False))
    last = bytes(sealer.seal(plaintext[2 * SMALL_CHUNK :], final=True))
    blob = sealer.header + first + last
    assert open_bytes(file_key, share_id, blob) == plaintext


def test_opener_rejects_data_beyond_layout(file_key: bytes, share_id: str) -> None:
    blob = seal_bytes(file_key, share_id, os.urandom(2 * SMALL_CHUNK + 3), SMALL_CHUNK)
    opener = StreamOpener(file_key, share_id, blob[:BLOB_HEADER_BYTES], len(blob))
    body = blob[BLOB_HEADER_BYTES:]
    opener.open(body)
    assert opener.finished
    with pytest.raises(DecryptionError):
        opener.open(body[: SMALL_CHUNK + TAG_BYTES])


def test_opener_not_finished_when_data_stops_early(file_key: bytes, share_id: str) -> None:
    blob = seal_bytes(file_key, share_id, os.urandom(3 * SMALL_CHUNK), SMALL_CHUNK)
    opener = StreamOpener(file_key, share_id, blob[:BLOB_HEADER_BYTES], len(blob))
    opener.open(blob[BLOB_HEADER_BYTES : BLOB_HEADER_BYTES + 2 * (SMALL_CHUNK + TAG_BYTES)])
    assert not opener.finished


def test_opener_rejects_batch_not_made_of_whole_chunks(file_key: bytes, share_id: str) -> None:
    blob = seal_bytes(file_key, share_id, os.urandom(3 * SMALL_CHUNK), SMALL_CHUNK)
    opener = StreamOpener(file_key, share_id, blob[:BLOB_HEADER_BYTES], len(blob))
    with pytest.raises(DecryptionError):
        opener.open(blob[BLOB_HEADER_BYTES : BLOB_HEADER_BYTES + SMALL_CHUNK])


# --- the blob: tampering -------------------------------------------------------------

# Two layouts: a short last chunk, and a plaintext that is an exact multiple of the chunk.
TAMPER_SIZES = [4 * SMALL_CHUNK + 100, 4 * SMALL_CHUNK]


@pytest.fixture(params=TAMPER_SIZES, ids=["short-last", "whole-last"])
def sealed(request: pytest.FixtureRequest, file_key: bytes, share_id: str) -> tuple[bytes, bytes]:
    plaintext = os.urandom(request.param)
    blob = seal_bytes(file_key, share_id, plaintext, SMALL_CHUNK)
    assert open_bytes(file_key, share_id, blob) == plaintext
    return plaintext, blob


def assert_rejected(file_key: bytes, share_id: str, blob: bytes) -> None:
    with pytest.raises(DecryptionError):
        open_bytes(file_key, share_id, blob)


def test_tamper_swap_two_chunks(
    sealed: tuple[bytes, bytes], file_key: bytes, share_id: str
) -> None:
    header, chunks = split_blob(sealed[1], SMALL_CHUNK)
    assert len(chunks) >= 4
    swapped = [chunks[1], chunks[0], *chunks[2:]]
    assert_rejected(file_key, share_id, header + b"".join(swapped))
    swapped_middle = [chunks[0], chunks[2], chunks[1], *chunks[3:]]
    assert_rejected(file_key, share_id, header + b"".join(swapped_middle))


def test_tamper_drop_middle_chunk(
    sealed: tuple[bytes, bytes], file_key: bytes, share_id: str
) -> None:
    header, chunks = split_blob(sealed[1], SMALL_CHUNK)
    assert_rejected(file_key, share_id, header + b"".join([chunks[0], *chunks[2:]]))


def test_tamper_duplicate_chunk(
    sealed: tuple[bytes, bytes], file_key: bytes, share_id: str
) -> None:
    header, chunks = split_blob(sealed[1], SMALL_CHUNK)
    duplicated = [chunks[0], chunks[1], chunks[1], *chunks[2:]]
    assert_rejected(file_key, share_id, header + b"".join(duplicated))


def test_tamper_drop_last_chunk(
    sealed: tuple[bytes, bytes], file_key: bytes, share_id: str
) -> None:
    header, chunks = split_blob(sealed[1], SMALL_CHUNK)
    assert_rejected(file_key, share_id, header + b"".join(chunks[:-1]))


def test_tamper_truncate_to_header_or_less(
    sealed: tuple[bytes, bytes], file_key: bytes, share_id: str
) -> None:
    blob = sealed[1]
    for cut in [0, 4, BLOB_HEADER_BYTES - 1, BLOB_HEADER_BYTES, BLOB_HEADER_BYTES + TAG_BYTES]:
        assert_rejected(file_key, share_id, blob[:cut])


def test_tamper_truncate_mid_chunk(
    sealed: tuple[bytes, bytes], file_key: bytes, share_id: str
) -> None:
    blob = sealed[1]
    sealed_chunk = SMALL_CHUNK + TAG_BYTES
    for cut in [1, 5, TAG_BYTES, TAG_BYTES + 1, 500, sealed_chunk - 1]:
        assert_rejected(file_key, share_id, blob[:-cut])
    # Cutting into the middle of an earlier chunk too.
    assert_rejected(file_key, share_id, blob[: BLOB_HEADER_BYTES + sealed_chunk + 700])


def test_tamper_extend_with_copy_of_chunk(
    sealed: tuple[bytes, bytes], file_key: bytes, share_id: str
) -> None:
    header, chunks = split_blob(sealed[1], SMALL_CHUNK)
    for extra in (chunks[0], chunks[-2], chunks[-1]):
        assert_rejected(file_key, share_id, header + b"".join(chunks) + extra)


@pytest.mark.parametrize("extra", [1, 3, TAG_BYTES - 1, TAG_BYTES, TAG_BYTES + 1, 40])
def test_tamper_append_random_bytes(
    extra: int, sealed: tuple[bytes, bytes], file_key: bytes, share_id: str
) -> None:
    assert_rejected(file_key, share_id, sealed[1] + os.urandom(extra))


def test_tamper_any_header_bit(sealed: tuple[bytes, bytes], file_key: bytes, share_id: str) -> None:
    blob = sealed[1]
    for index in range(BLOB_HEADER_BYTES):
        for bit in range(8):
            assert_rejected(file_key, share_id, flip_bit(blob, index, bit))


def test_tamper_header_replaced_with_other_chunk_size(
    sealed: tuple[bytes, bytes], file_key: bytes, share_id: str
) -> None:
    blob = sealed[1]
    for chunk in (512, 2048, 1024 + 16, 1024 - 16):
        assert_rejected(file_key, share_id, blob_header(chunk) + blob[BLOB_HEADER_BYTES:])


def test_tamper_chunk_body_bit(sealed: tuple[bytes, bytes], file_key: bytes, share_id: str) -> None:
    blob = sealed[1]
    sealed_chunk = SMALL_CHUNK + TAG_BYTES
    for chunk_index in (0, 1, 3):
        for offset in (0, 1, SMALL_CHUNK // 2, SMALL_CHUNK - 1):
            index = BLOB_HEADER_BYTES + chunk_index * sealed_chunk + offset
            assert_rejected(file_key, share_id, flip_bit(blob, index, offset % 8))
    # The last chunk's body, whatever its length.
    _header, chunks = split_blob(blob, SMALL_CHUNK)
    last_start = len(blob) - len(chunks[-1])
    assert_rejected(file_key, share_id, flip_bit(blob, last_start, 3))


def test_tamper_tag_bit(sealed: tuple[bytes, bytes], file_key: bytes, share_id: str) -> None:
    blob = sealed[1]
    _header, chunks = split_blob(blob, SMALL_CHUNK)
    tag_starts = []
    position = BLOB_HEADER_BYTES
    for chunk in chunks:
        position += len(chunk)
        tag_starts.append(position - TAG_BYTES)
    for start in tag_starts:
        for offset in (0, TAG_BYTES - 1):
            assert_rejected(file_key, share_id, flip_bit(blob, start + offset, 5))


def test_tamper_blob_moved_to_another_share(sealed: tuple[bytes, bytes], file_key: bytes) -> None:
    assert_rejected(file_key, share_id_for(new_token()), sealed[1])


def test_tamper_blob_moved_between_shares_same_file_key(file_key: bytes) -> None:
    """Even with a shared file key, the share id in the associated data pins the blob."""
    first, second = share_id_for(new_token()), share_id_for(new_token())
    blob = seal_bytes(file_key, first, b"hello", SMALL_CHUNK)
    assert open_bytes(file_key, first, blob) == b"hello"
    assert_rejected(file_key, second, blob)


def test_tamper_other_file_key(sealed: tuple[bytes, bytes], share_id: str) -> None:
    assert_rejected(os.urandom(32), share_id, sealed[1])


def test_tamper_splice_chunks_from_another_blob(file_key: bytes, share_id: str) -> None:
    """A chunk taken from another position of another blob is caught by the counter."""
    one = seal_bytes(file_key, share_id, os.urandom(3 * SMALL_CHUNK), SMALL_CHUNK)
    two = seal_bytes(file_key, share_id, os.urandom(3 * SMALL_CHUNK), SMALL_CHUNK)
    header, chunks_one = split_blob(one, SMALL_CHUNK)
    _, chunks_two = split_blob(two, SMALL_CHUNK)
    assert_rejected(file_key, share_id, header + chunks_one[0] + chunks_two[0] + chunks_one[2])
    # Another blob's last chunk (counter 2, last flag set) placed at position 1 fails too.
    assert_rejected(file_key, share_id, header + chunks_one[0] + chunks_two[2] + chunks_one[2])


def test_tamper_empty_blob(file_key: bytes, share_id: str) -> None:
    blob = seal_bytes(file_key, share_id, b"", SMALL_CHUNK)
    assert_rejected(file_key, share_id, blob[:-1])
    assert_rejected(file_key, share_id, blob + b"\x00")
    assert_rejected(file_key, share_id, flip_bit(blob, len(blob) - 1))
    assert_rejected(file_key, share_id, blob[:BLOB_HEADER_BYTES])


@pytest.mark.parametrize("chunk", [0, MAX_CHUNK_SIZE + 1])
def test_opener_rejects_header_chunk_size_out_of_range(
    chunk: int, file_key: bytes, share_id: str
) -> None:
    with pytest.raises(DecryptionError):
        StreamOpener(file_key, share_id, blob_header(chunk), BLOB_HEADER_BYTES + 100)


def test_opener_rejects_short_header(file_key: bytes, share_id: str) -> None:
    with pytest.raises(DecryptionError):
        StreamOpener(file_key, share_id, blob_header(SMALL_CHUNK)[:-1], 100)


# --- StreamSealer misuse ------------------------------------------------------------


@pytest.mark.parametrize("size", [1, SMALL_CHUNK - 1, SMALL_CHUNK + 1, 2 * SMALL_CHUNK + 7])
def test_sealer_rejects_partial_non_final_batch(size: int, file_key: bytes, share_id: str) -> None:
    sealer = StreamSealer(file_key, share_id, SMALL_CHUNK)
    with pytest.raises(ValueError):
        sealer.seal(os.urandom(size), final=False)


def test_sealer_rejects_empty_non_final_batch(file_key: bytes, share_id: str) -> None:
    sealer = StreamSealer(file_key, share_id, SMALL_CHUNK)
    with pytest.raises(ValueError):
        sealer.seal(b"", final=False)


def test_sealer_rejects_sealing_after_final(file_key: bytes, share_id: str) -> None:
    sealer = StreamSealer(file_key, share_id, SMALL_CHUNK)
    sealer.seal(b"abc", final=True)
    with pytest.raises(ValueError):
        sealer.seal(b"more", final=True)
    with pytest.raises(ValueError):
        sealer.seal(os.urandom(SMALL_CHUNK), final=False)


def test_sealer_rejects_sealing_after_empty_final(file_key: bytes, share_id: str) -> None:
    sealer = StreamSealer(file_key, share_id, SMALL_CHUNK)
    sealer.seal(b"", final=True)
    with pytest.raises(ValueError):
        sealer.seal(b"", final=True)


def test_sealer_rejects_empty_final_after_earlier_batches(file_key: bytes, share_id: str) -> None:
    sealer = StreamSealer(file_key, share_id, SMALL_CHUNK)
    sealer.seal(os.urandom(SMALL_CHUNK), final=False)
    with pytest.raises(ValueError):
        sealer.seal(b"", final=True)


@pytest.mark.parametrize("chunk", [0, -1, MAX_CHUNK_SIZE + 1])
def test_sealer_rejects_chunk_size_out_of_range(chunk: int, file_key: bytes, share_id: str) -> None:
    with pytest.raises(ValueError):
        StreamSealer(file_key, share_id, chunk)


@pytest.mark.parametrize("length", [1, 16, 32])
@pytest.mark.parametrize("label", ["share-id", "kek", "revoke-id", "kek+password"])
def test_derive_is_rfc_5869_hkdf_sha256(label: str, length: int) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    secret = bytes(range(32)) + label.encode()
    reference = HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=None,
        info=b"onetimeshare/v1/" + label.encode(),
    ).derive(secret)
    assert derive(secret, label, length) == reference


def test_derive_refuses_more_than_one_block() -> None:
    with pytest.raises(ValueError):
        derive(b"x", "label", 33)
