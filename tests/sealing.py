"""Whole-buffer sealing and opening of the blob format, for tests that need a blob at once.

The service itself only ever seals and opens in batches (``StreamSealer``,
``StreamOpener`` in ``domain/crypto.py``); these are built on the same two classes.
"""

from __future__ import annotations

from onetimeshare.domain.crypto import (
    BLOB_HEADER_BYTES,
    DEFAULT_CHUNK_SIZE,
    TAG_BYTES,
    DecryptionError,
    StreamOpener,
    StreamSealer,
)


def ciphertext_size(plaintext_size: int, chunk_size: int) -> int:
    """Exact blob size (header included) for a plaintext of this size."""
    chunks = max(1, -(-plaintext_size // chunk_size))
    return BLOB_HEADER_BYTES + plaintext_size + chunks * TAG_BYTES


def seal_bytes(
    file_key: bytes, share_id: str, plaintext: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> bytes:
    sealer = StreamSealer(file_key, share_id, chunk_size)
    return sealer.header + bytes(sealer.seal(plaintext, final=True))


def open_bytes(file_key: bytes, share_id: str, blob: bytes) -> bytes:
    opener = StreamOpener(file_key, share_id, blob[:BLOB_HEADER_BYTES], len(blob))
    plaintext = bytes(opener.open(blob[BLOB_HEADER_BYTES:]))
    if not opener.finished:
        raise DecryptionError("blob ended early")
    return plaintext
