"""Property tests of the STREAM blob format in app/domain/crypto.py.

For random plaintexts, chunk sizes and ways of splitting the plaintext into
batches, sealing then opening gives the plaintext back exactly, and every
change an attacker (or a broken disk) can make to a blob is refused with
``DecryptionError``: a flipped bit, a cut, a splice of two blobs, a blob
moved to another share.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetimeshare.domain.crypto import (
    BLOB_HEADER_BYTES,
    TAG_BYTES,
    DecryptionError,
    StreamOpener,
    StreamSealer,
)
from tests.sealing import ciphertext_size, open_bytes, seal_bytes

MAX_PLAINTEXT = 200_000
MAX_CHUNK = 8192
# Keeps tiny chunk sizes affordable (200 000 one-byte chunks take seconds to seal);
# with chunks of 49 bytes and more the whole 0..200 000 range is reachable.
MAX_CHUNKS = 4096

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written into the working tree
    suppress_health_check=[HealthCheck.too_slow],
)

keys = st.binary(min_size=32, max_size=32)
share_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
chunk_sizes = st.one_of(
    st.integers(min_value=1, max_value=MAX_CHUNK),
    st.sampled_from([1, 2, 15, 16, 17, 63, 64, 1000, 1024, 4096, 8191, 8192]),
)


@dataclass(frozen=True)
class Sealed:
    key: bytes
    share_id: str
    chunk_size: int
    plaintext: bytes
    batches: tuple[int, ...]  # whole chunks in each non-final batch
    blob: bytes

    @property
    def chunk_count(self) -> int:
        return max(1, -(-len(self.plaintext) // self.chunk_size))


def pseudo_random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@st.composite
def plaintexts(draw: st.DrawFn, chunk_size: int, min_size: int = 0) -> bytes:
    """Small raw binaries, any size up to the limit, and sizes next to chunk boundaries."""
    limit = min(MAX_PLAINTEXT, chunk_size * MAX_CHUNKS)
    min_size = min(min_size, limit)
    kind = draw(st.sampled_from(["binary", "any size", "boundary"]))
    if kind == "binary" and min_size <= 2048:
        return draw(st.binary(min_size=min_size, max_size=min(limit, 4096)))
    if kind != "boundary":
        size = draw(st.integers(min_value=min_size, max_value=limit))
    else:
        chunks = draw(st.integers(min_value=0, max_value=limit // chunk_size))
        offset = draw(st.sampled_from([-1, 0, 1]))
        size = min(limit, max(min_size, chunks * chunk_size + offset))
    return pseudo_random_bytes(size, draw(st.integers(min_value=0, max_value=2**64 - 1)))


@st.composite
def batch_splits(draw: st.DrawFn, plaintext_size: int, chunk_size: int) -> tuple[int, ...]:
    """Whole chunks per non-final batch, leaving at least one byte for the final batch."""
    available = (plaintext_size - 1) // chunk_size if plaintext_size else 0
    held = draw(st.integers(min_value=0, max_value=available))
    if held == 0:
        return ()
    cuts = draw(
        st.lists(
            st.integers(min_value=1, max_value=max(1, held - 1)),
            unique=True,
            max_size=min(held - 1, 24),
        )
    )
    bounds = [0, *sorted(cut for cut in cuts if cut < held), held]
    return tuple(end - start for start, end in itertools.pairwise(bounds))


def seal_in_batches(
    key: bytes,
    share_id: str,
    chunk_size: int,
    plaintext: bytes,
    batches: tuple[int, ...],
    batch_chunks: int,
) -> bytes:
    sealer = StreamSealer(key, share_id, chunk_size, batch_chunks)
    blob = bytearray(sealer.header)
    position = 0
    for chunks in batches:
        end = position + chunks * chunk_size
        blob += sealer.seal(plaintext[position:end], final=False)  # copied at once
        position = end
    blob += sealer.seal(plaintext[position:], final=True)
    return bytes(blob)


@st.composite
def sealed_blobs(
    draw: st.DrawFn,
    min_chunks: int = 1,
    chunk_size: int | None = None,
    share_id: str | None = None,
    key: bytes | None = None,
) -> Sealed:
    if chunk_size is None:
        chunk_size = draw(chunk_sizes)
    if share_id is None:
        share_id = draw(share_ids)
    if key is None:
        key = draw(keys)
    min_size = (min_chunks - 1) * chunk_size + 1 if min_chunks > 1 else 0
    plaintext = draw(plaintexts(chunk_size, min_size=min_size))
    batches = draw(batch_splits(len(plaintext), chunk_size))
    batch_chunks = draw(st.integers(min_value=1, max_value=32))
    blob = seal_in_batches(key, share_id, chunk_size, plaintext, batches, batch_chunks)
    return Sealed(key, share_id, chunk_size, plaintext, batches, blob)


def assert_refused(key: bytes, share_id: str, blob: bytes) -> None:
    with pytest.raises(DecryptionError) as caught:
        open_bytes(key, share_id, blob)
    assert type(caught.value) is DecryptionError


# --- round trips -------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(sealed=sealed_blobs())
def test_sealing_in_any_batch_split_round_trips(sealed: Sealed) -> None:
    assert len(sealed.blob) == ciphertext_size(len(sealed.plaintext), sealed.chunk_size)
    # The split never changes the bytes: nonces count chunks, not batches.
    assert sealed.blob == seal_bytes(
        sealed.key, sealed.share_id, sealed.plaintext, sealed.chunk_size
    )
    assert open_bytes(sealed.key, sealed.share_id, sealed.blob) == sealed.plaintext


@PROPERTY_SETTINGS
@given(sealed=sealed_blobs(), data=st.data())
def test_opening_in_any_batch_split_round_trips(sealed: Sealed, data: st.DataObject) -> None:
    header, body = sealed.blob[:BLOB_HEADER_BYTES], sealed.blob[BLOB_HEADER_BYTES:]
    opener = StreamOpener(sealed.key, sealed.share_id, header, len(sealed.blob))
    assert opener.chunk_count == sealed.chunk_count
    assert opener.plaintext_size == len(sealed.plaintext)
    sealed_chunk = sealed.chunk_size + TAG_BYTES
    plaintext = bytearray()
    position = 0
    while position < len(body):
        chunks = data.draw(st.integers(min_value=1, max_value=64), label="chunks per batch")
        piece = body[position : position + chunks * sealed_chunk]
        plaintext += opener.open(piece)
        position += len(piece)
    assert opener.finished
    assert bytes(plaintext) == sealed.plaintext


# --- tampering ---------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(sealed=sealed_blobs(), data=st.data())
def test_any_single_bit_flip_is_refused(sealed: Sealed, data: st.DataObject) -> None:
    position = data.draw(
        st.one_of(
            st.integers(min_value=0, max_value=BLOB_HEADER_BYTES - 1),  # the header, often
            st.integers(min_value=0, max_value=len(sealed.blob) - 1),
        ),
        label="byte",
    )
    bit = data.draw(st.integers(min_value=0, max_value=7), label="bit")
    tampered = bytearray(sealed.blob)
    tampered[position] ^= 1 << bit
    assert_refused(sealed.key, sealed.share_id, bytes(tampered))


@PROPERTY_SETTINGS
@given(sealed=sealed_blobs(), data=st.data())
def test_any_cut_is_refused(sealed: Sealed, data: st.DataObject) -> None:
    body_boundaries = [
        BLOB_HEADER_BYTES + index * (sealed.chunk_size + TAG_BYTES)
        for index in range(sealed.chunk_count)
    ]
    length = data.draw(
        st.one_of(
            st.integers(min_value=0, max_value=BLOB_HEADER_BYTES),  # inside the header
            st.sampled_from(body_boundaries),  # whole chunks dropped from the end
            st.integers(min_value=0, max_value=len(sealed.blob) - 1),
        ),
        label="kept bytes",
    )
    assert length < len(sealed.blob)
    assert_refused(sealed.key, sealed.share_id, sealed.blob[:length])


@st.composite
def splice_pairs(draw: st.DrawFn) -> tuple[Sealed, Sealed, int]:
    """Two blobs of one share id and chunk size under different keys, and a chunk boundary."""
    chunk_size = draw(chunk_sizes)
    share_id = draw(share_ids)
    first = draw(sealed_blobs(min_chunks=2, chunk_size=chunk_size, share_id=share_id))
    other_key = draw(keys)
    if other_key == first.key:
        other_key = bytes([other_key[0] ^ 1]) + other_key[1:]
    second = draw(
        sealed_blobs(min_chunks=2, chunk_size=chunk_size, share_id=share_id, key=other_key)
    )
    boundary = draw(
        st.integers(min_value=1, max_value=min(first.chunk_count, second.chunk_count) - 1)
    )
    return first, second, boundary


@PROPERTY_SETTINGS
@given(pair=splice_pairs())
def test_splicing_two_blobs_at_a_chunk_boundary_is_refused(
    pair: tuple[Sealed, Sealed, int],
) -> None:
    first, second, boundary = pair
    assert first.blob[:BLOB_HEADER_BYTES] == second.blob[:BLOB_HEADER_BYTES]
    offset = BLOB_HEADER_BYTES + boundary * (first.chunk_size + TAG_BYTES)
    spliced = first.blob[:offset] + second.blob[offset:]
    assert spliced not in (first.blob, second.blob)
    assert_refused(first.key, first.share_id, spliced)
    assert_refused(second.key, second.share_id, spliced)


@PROPERTY_SETTINGS
@given(sealed=sealed_blobs(), other_share_id=share_ids)
def test_a_blob_moved_to_another_share_is_refused(sealed: Sealed, other_share_id: str) -> None:
    if other_share_id == sealed.share_id:
        other_share_id = f"{int(sealed.share_id, 16) ^ 1:032x}"
    assert_refused(sealed.key, other_share_id, sealed.blob)
