"""Measure sealing and opening throughput of the blob format for several chunk sizes.

Prints MB/s (10^6 bytes/s) for each chunk size, sealing and opening a buffer in
1 MiB batches exactly as the upload and download paths do. The chunk size in
app/domain/crypto.py was chosen from this table.

    python bench/chunk_size.py [--mib 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from onetimeshare.domain.crypto import (
    BLOB_HEADER_BYTES,
    TAG_BYTES,
    StreamOpener,
    StreamSealer,
)

SHARE_ID = "00" * 16
BATCH_BYTES = 1024 * 1024


def ciphertext_size(plaintext_size: int, chunk_size: int) -> int:
    """Exact blob size (header included) for a plaintext of this size."""
    chunks = max(1, -(-plaintext_size // chunk_size))
    return BLOB_HEADER_BYTES + plaintext_size + chunks * TAG_BYTES


def measure(chunk_size: int, plaintext: bytes, repeats: int) -> tuple[float, float]:
    key = os.urandom(32)
    batch_chunks = max(1, BATCH_BYTES // chunk_size)
    seal_times, open_times = [], []
    for _ in range(repeats):
        sealer = StreamSealer(key, SHARE_ID, chunk_size, batch_chunks)
        step = sealer.batch_bytes
        blob = bytearray(ciphertext_size(len(plaintext), chunk_size))
        blob[:BLOB_HEADER_BYTES] = sealer.header
        position = BLOB_HEADER_BYTES
        view = memoryview(plaintext)
        started = time.perf_counter()
        for offset in range(0, len(view), step):
            final = offset + step >= len(view)
            sealed = sealer.seal(view[offset : offset + step], final=final)
            blob[position : position + len(sealed)] = sealed
            position += len(sealed)
        seal_times.append(time.perf_counter() - started)

        opener = StreamOpener(
            key, SHARE_ID, bytes(blob[:BLOB_HEADER_BYTES]), len(blob), batch_chunks
        )
        cipher_view = memoryview(blob)[BLOB_HEADER_BYTES:]
        step = opener.batch_ciphertext_bytes
        started = time.perf_counter()
        for offset in range(0, len(cipher_view), step):
            opener.open(cipher_view[offset : offset + step])
        open_times.append(time.perf_counter() - started)
        assert opener.finished
    size = len(plaintext)
    return size / statistics.median(seal_times) / 1e6, size / statistics.median(open_times) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    plaintext = os.urandom(args.mib * 1024 * 1024)
    print(f"{'chunk':>8} {'overhead':>9} {'seal MB/s':>10} {'open MB/s':>10}")
    for chunk_kib in (16, 64, 256, 1024):
        chunk = chunk_kib * 1024
        seal, open_ = measure(chunk, plaintext, args.repeats)
        overhead = TAG_BYTES / chunk * 100
        print(f"{chunk_kib:>6}Ki {overhead:>8.3f}% {seal:>10.0f} {open_:>10.0f}")


if __name__ == "__main__":
    main()
