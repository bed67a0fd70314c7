"""Key derivation, the sealed key envelope, and the chunked blob format.

Everything secret about a share hangs off the 32-byte token in its link:

* ``share_id`` = HKDF(token, "share-id"): names Redis keys and blob files.
* ``kek``      = HKDF(token, "kek"), or for protected shares
                 HKDF(token-secret || Argon2id(password, salt), "kek+password").
* the envelope = ChaCha20-Poly1305(kek) over {file key, name, content type}.
* the blob     = STREAM(ChaCha20-Poly1305(file key)) over the plaintext.

The server stores neither the token nor the password, so Redis and the disk
together reveal nothing without the link.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import re
import struct
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

TOKEN_BYTES = 32
KEY_BYTES = 32
SHARE_ID_BYTES = 16
TAG_BYTES = 16
NONCE_BYTES = 12
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
_HKDF_PREFIX = b"onetimeshare/v1/"
_HASH_BYTES = 32
_ZERO_SALT = bytes(_HASH_BYTES)

BLOB_MAGIC = b"OTS\x1a"
BLOB_VERSION = 1
_HEADER = struct.Struct(">4sBI")  # magic, version, chunk size
BLOB_HEADER_BYTES = _HEADER.size
# 64 KiB on disk: bench/chunk_size.py shows 64 KiB chunks sealed in 1 MiB
# batches with encrypt_into run within a few percent of 1 MiB chunks, while
# keeping the unit of authentication (what must be buffered before a byte is
# released) small.
DEFAULT_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024

# Version 1 bound only the share id; version 2 (written since 0.2) also binds the record's
# kind, size and Argon2 parameters, so a rewritten record no longer opens. Both are read.
_ENVELOPE_V1 = b"\x01"
_ENVELOPE_V2 = b"\x02"

# Absolute bounds on Argon2id cost, for the settings and for every record read back from
# Redis: one hash costs at most 1 GiB and about ten seconds on two cores, whatever a
# rewritten record says. Lowering OTS_ARGON2_* later never locks out older shares, whose
# parameters only have to be within these.
ARGON2_MAX_TIME_COST = 10
ARGON2_MAX_MEMORY_KIB = 1024 * 1024
ARGON2_MAX_PARALLELISM = 16
ARGON2_MIN_MEMORY_KIB_PER_LANE = 8


class DecryptionError(Exception):
    """A sealed value or blob failed authentication: wrong key or tampered data."""


class InvalidToken(ValueError):
    """The token is not 43 characters of base64url encoding 32 bytes."""


# --- tokens and key derivation -------------------------------------------------


def new_token() -> bytes:
    return os.urandom(TOKEN_BYTES)


def encode_token(token: bytes) -> str:
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


# The exception never carries the text itself: it may be a real link token, and an
# exception's message can end up in a log.
_REFUSED_TEXT = "not 43 characters of canonical base64url"


def decode_token(text: str) -> bytes:
    """Parse a link token, rejecting anything that is not exactly canonical."""
    if not _TOKEN_PATTERN.fullmatch(text):
        raise InvalidToken(_REFUSED_TEXT)
    try:
        token = base64.urlsafe_b64decode(text + "=")
    except binascii.Error as error:
        raise InvalidToken(_REFUSED_TEXT) from error
    # 43 characters carry 258 bits; the last two must be zero to be canonical,
    # otherwise several links would name the same share.
    if encode_token(token) != text:
        raise InvalidToken(_REFUSED_TEXT)
    return token


def derive(secret: bytes, label: str, length: int = KEY_BYTES) -> bytes:
    """HKDF-SHA256 (RFC 5869) with no salt, for outputs of one hash block at most.

    Written out with hmac.digest rather than cryptography's HKDF class: the same
    bytes (tests compare both), at a fraction of the per-call cost, and every
    request derives several values.
    """
    if not 0 < length <= _HASH_BYTES:
        raise ValueError("derive() makes at most one SHA-256 block")
    pseudo_random_key = hmac.digest(_ZERO_SALT, secret, "sha256")
    info = _HKDF_PREFIX + label.encode("ascii")
    return hmac.digest(pseudo_random_key, info + b"\x01", "sha256")[:length]


def share_id_for(token: bytes) -> str:
    return derive(token, "share-id", SHARE_ID_BYTES).hex()


def revoke_id_for(revoke_token: bytes) -> str:
    """The Redis name of a revoke capability (an independent token, not the share link)."""
    return derive(revoke_token, "revoke-id", SHARE_ID_BYTES).hex()


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """Argon2id cost, stored with every protected share so it can be raised later."""

    time_cost: int
    memory_kib: int
    parallelism: int

    @property
    def within_bounds(self) -> bool:
        return (
            1 <= self.time_cost <= ARGON2_MAX_TIME_COST
            and 1 <= self.parallelism <= ARGON2_MAX_PARALLELISM
            and ARGON2_MIN_MEMORY_KIB_PER_LANE * self.parallelism
            <= self.memory_kib
            <= ARGON2_MAX_MEMORY_KIB
        )

    def label(self) -> str:
        return f"argon2id:t={self.time_cost}:m={self.memory_kib}:p={self.parallelism}"

    def hash(self, password: bytes, salt: bytes) -> bytes:
        """Blocking and memory hungry: call through ``Argon2Pool``, never on the loop."""
        return hash_secret_raw(
            password,
            salt,
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
            hash_len=KEY_BYTES,
            type=Type.ID,
        )


def key_encryption_key(token: bytes, password_hash: bytes | None) -> bytes:
    token_secret = derive(token, "kek")
    if password_hash is None:
        return token_secret
    return derive(token_secret + password_hash, "kek+password")


# --- the envelope: file key and file facts, sealed under the KEK ----------------


@dataclass(frozen=True, slots=True)
class Envelope:
    file_key: bytes
    name: str
    content_type: str


@dataclass(frozen=True, slots=True)
class EnvelopeBinding:
    """The record's facts a version-2 envelope is bound to: change one and it fails to open."""

    kind: str
    size: int
    argon2: Argon2Params | None

    def associated_data(self, share_id: str) -> bytes:
        password = self.argon2.label() if self.argon2 is not None else "none"
        return f"onetimeshare envelope v2:{share_id}|{self.kind}|{self.size}|{password}".encode(
            "ascii"
        )


def seal_envelope(kek: bytes, share_id: str, envelope: Envelope, binding: EnvelopeBinding) -> bytes:
    payload = json.dumps(
        {
            "k": base64.b64encode(envelope.file_key).decode("ascii"),
            "n": envelope.name,
            "t": envelope.content_type,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    nonce = os.urandom(NONCE_BYTES)
    sealed = ChaCha20Poly1305(kek).encrypt(nonce, payload, binding.associated_data(share_id))
    return _ENVELOPE_V2 + nonce + sealed


def open_envelope(kek: bytes, share_id: str, sealed: bytes, binding: EnvelopeBinding) -> Envelope:
    version = sealed[:1]
    if len(sealed) < 1 + NONCE_BYTES + TAG_BYTES or version not in (_ENVELOPE_V1, _ENVELOPE_V2):
        raise DecryptionError("unknown envelope format")
    if version == _ENVELOPE_V1:
        associated_data = _envelope_v1_aad(share_id)
    else:
        associated_data = binding.associated_data(share_id)
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        payload = ChaCha20Poly1305(kek).decrypt(nonce, body, associated_data)
    except InvalidTag as error:
        raise DecryptionError("envelope does not open with this key") from error
    try:
        fields = json.loads(payload)
        return Envelope(
            file_key=base64.b64decode(fields["k"], validate=True),
            name=str(fields["n"]),
            content_type=str(fields["t"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        # Authenticated, so only our own code could have written it: still never a 500.
        raise DecryptionError("envelope contents are malformed") from error


def _envelope_v1_aad(share_id: str) -> bytes:
    return b"onetimeshare envelope v1:" + share_id.encode("ascii")


# --- tickets: short-lived capabilities that carry key material -------------------------
#
# A ticket is 32 random bytes handed to the client. The server keeps, under a Redis key
# named by HKDF(ticket, "<purpose>-id"), a payload sealed under HKDF(ticket, "<purpose>-key")
# and bound to the share; without the ticket the stored value opens to nothing. Used for the
# unlock proof (the Argon2 output, so a checked password need not cross the wire again).


def ticket_id(ticket: bytes, purpose: str) -> str:
    return derive(ticket, f"{purpose}-id", SHARE_ID_BYTES).hex()


def seal_ticket(ticket: bytes, purpose: str, share_id: str, payload: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    cipher = ChaCha20Poly1305(derive(ticket, f"{purpose}-key"))
    return nonce + cipher.encrypt(nonce, payload, _ticket_aad(purpose, share_id))


def open_ticket(ticket: bytes, purpose: str, share_id: str, sealed: bytes) -> bytes:
    cipher = ChaCha20Poly1305(derive(ticket, f"{purpose}-key"))
    try:
        return cipher.decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _ticket_aad(purpose, share_id)
        )
    except (InvalidTag, ValueError) as error:
        raise DecryptionError("ticket does not open for this share") from error


def _ticket_aad(purpose: str, share_id: str) -> bytes:
    return f"onetimeshare ticket v1:{purpose}:{share_id}".encode("ascii")


# --- the blob: STREAM construction over fixed-size chunks -----------------------
#
# blob   = header || chunk_0 || ... || chunk_n
# header = magic(4) || version(1) || chunk_size(4, big-endian)
# chunk_i = ChaCha20-Poly1305(file_key, nonce_i, plaintext_i, aad = header || share_id)
# nonce_i = i as 11 bytes big-endian || 0x01 if last chunk else 0x00
#
# Every chunk but the last holds exactly chunk_size bytes; the last holds 1..chunk_size
# bytes, or 0 for an empty file. The counter in the nonce catches reordering, dropping
# and duplication; the last-chunk flag catches truncation and extension; the header and
# share id in the associated data catch a changed header and a blob moved to another share.


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(NONCE_BYTES - 1, "big") + (b"\x01" if last else b"\x00")


def blob_header(chunk_size: int) -> bytes:
    return _HEADER.pack(BLOB_MAGIC, BLOB_VERSION, chunk_size)


class StreamSealer:
    """Seals plaintext batch by batch into blob bytes, alternating two output buffers.

    Callers pass whole chunks in every batch except the final one, and must
    hold back at least one byte (or nothing, for an empty file) for the final
    batch so the last chunk carries the last-chunk flag. Two buffers let one
    sealed batch be written out while the next is sealed.
    """

    def __init__(
        self,
        file_key: bytes,
        share_id: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        batch_chunks: int = 16,
        first_chunk: int = 0,
    ) -> None:
        """``first_chunk`` continues a blob sealed that far already (a resumed upload)."""
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError("chunk size out of range")
        self.chunk_size = chunk_size
        self.header = blob_header(chunk_size)
        self._aad = self.header + bytes.fromhex(share_id)
        self._cipher = ChaCha20Poly1305(file_key)
        self._counter = first_chunk
        self._finished = False
        self._batch_chunks = batch_chunks
        # Allocated by the first batch that needs them: an upload that has sent a few
        # bytes and stalls holds no output buffers at all.
        self._outs = [bytearray(), bytearray()]
        self._turn = 0

    @property
    def batch_bytes(self) -> int:
        """Plaintext bytes of one full batch."""
        return self._batch_chunks * self.chunk_size

    @property
    def buffered_bytes(self) -> int:
        return sum(len(out) for out in self._outs)

    def seal(self, plaintext: bytes | bytearray | memoryview, *, final: bool) -> memoryview:
        """Seal one batch; the returned view is valid until the call after next."""
        if self._finished:
            raise ValueError("stream already finished")
        view = memoryview(plaintext)
        size = len(view)
        if not final and (size == 0 or size % self.chunk_size):
            raise ValueError("non-final batches must be whole chunks")
        if final and size == 0 and self._counter > 0:
            raise ValueError("the final batch must hold the last byte back")
        chunks = max(1, -(-size // self.chunk_size)) if final else size // self.chunk_size
        needed = size + chunks * TAG_BYTES
        self._turn ^= 1
        if needed > len(self._outs[self._turn]):
            self._outs[self._turn] = bytearray(needed)
        out = memoryview(self._outs[self._turn])
        written = 0
        for index in range(chunks):
            piece = view[index * self.chunk_size : (index + 1) * self.chunk_size]
            last = final and index == chunks - 1
            end = written + len(piece) + TAG_BYTES
            self._cipher.encrypt_into(
                _nonce(self._counter, last), piece, self._aad, out[written:end]
            )
            self._counter += 1
            written = end
        self._finished = final
        return out[:written]


class StreamOpener:
    """Opens blob bytes batch by batch, given the blob's total size up front.

    Knowing the total size tells which chunk is last, so a cut or an
    extension shows up as a failed tag rather than a silent short file.
    """

    def __init__(
        self, file_key: bytes, share_id: str, header: bytes, blob_size: int, batch_chunks: int = 16
    ) -> None:
        if len(header) != BLOB_HEADER_BYTES:
            raise DecryptionError("blob header truncated")
        magic, version, chunk_size = _HEADER.unpack(header)
        if magic != BLOB_MAGIC or version != BLOB_VERSION:
            raise DecryptionError("not a blob of a known version")
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise DecryptionError("blob chunk size out of range")
        body = blob_size - BLOB_HEADER_BYTES
        sealed_chunk = chunk_size + TAG_BYTES
        self.chunk_count = max(1, -(-body // sealed_chunk))
        last_chunk = body - (self.chunk_count - 1) * sealed_chunk
        # A last chunk holds 1..chunk_size bytes, or 0 only when it is the only chunk.
        if last_chunk < TAG_BYTES or (last_chunk == TAG_BYTES and self.chunk_count > 1):
            raise DecryptionError("blob size is not a valid chunk layout")
        self.chunk_size = chunk_size
        self.plaintext_size = body - self.chunk_count * TAG_BYTES
        self._aad = header + bytes.fromhex(share_id)
        self._cipher = ChaCha20Poly1305(file_key)
        self._counter = 0
        self.batch_ciphertext_bytes = batch_chunks * sealed_chunk
        self._out = bytearray()  # sized by the first batch

    def open(self, ciphertext: bytes | bytearray | memoryview) -> memoryview:
        """Open a batch of whole sealed chunks (the final batch may end short).

        The returned view is valid until the next call.
        """
        view = memoryview(ciphertext)
        sealed_chunk = self.chunk_size + TAG_BYTES
        needed = len(view) - (-(-len(view) // sealed_chunk)) * TAG_BYTES
        if needed > len(self._out):
            self._out = bytearray(needed)
        out = memoryview(self._out)
        written = 0
        for start in range(0, len(view), sealed_chunk):
            piece = view[start : start + sealed_chunk]
            if self._counter >= self.chunk_count:
                raise DecryptionError("blob is longer than its layout")
            last = self._counter == self.chunk_count - 1
            if not last and len(piece) != sealed_chunk:
                raise DecryptionError("short chunk before the end of the blob")
            end = written + len(piece) - TAG_BYTES
            try:
                self._cipher.decrypt_into(
                    _nonce(self._counter, last), piece, self._aad, out[written:end]
                )
            except (InvalidTag, ValueError) as error:
                raise DecryptionError(f"chunk {self._counter} failed authentication") from error
            self._counter += 1
            written = end
        return out[:written]

    @property
    def finished(self) -> bool:
        return bool(self._counter == self.chunk_count)
