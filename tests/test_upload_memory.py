"""What an upload in progress holds while it waits for its client: little memory, no file.

Measured with tracemalloc on the real share service (Redis, disk): every buffer an
upload holds is a Python allocation, so a stalled upload that allocated a whole
pipeline's worth of buffers up front shows up here.
"""

from __future__ import annotations

import os
import tracemalloc

from quart import Quart

from onetimeshare.config import Settings
from onetimeshare.domain.shares import Upload

STALLED = 20
KIB = 1024


async def test_stalled_uploads_hold_kilobytes_and_no_file(app: Quart, settings: Settings) -> None:
    shares = app.extensions["onetimeshare"].shares
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        uploads: list[Upload] = []
        try:
            for _ in range(STALLED):
                # Each declares the largest file allowed, then sends 100 bytes and stalls.
                upload = await shares.begin_upload(settings.max_upload_bytes)
                uploads.append(upload)
                await upload.write(os.urandom(100))
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            for upload in uploads:
                await upload.abort()
    finally:
        tracemalloc.stop()
    # A full pipeline is about 3 MiB per upload (1 MiB in, two sealed 1 MiB batches out).
    assert held < STALLED * 256 * KIB, f"{held // KIB} KiB for {STALLED} stalled uploads"
    assert not settings.blob_dir.exists() or list(settings.blob_dir.iterdir()) == []


async def test_buffers_grow_to_one_batch_and_the_blob_is_whole(
    app: Quart, settings: Settings
) -> None:
    """Growth on demand must not change a byte: a file fed in odd pieces opens intact."""
    shares = app.extensions["onetimeshare"].shares
    data = os.urandom(3 * 1024 * 1024 + 12345)
    upload = await shares.begin_upload(len(data))
    try:
        for start in range(0, len(data), 77_777):
            await upload.write(data[start : start + 77_777])
        assert upload.buffered_bytes <= 4 * 1024 * 1024
        created = await upload.finish(
            kind="file",
            name="f.bin",
            content_type="application/octet-stream",
            password="",
            expires_in=None,
        )
    except BaseException:
        await upload.abort()
        raise
    download = await shares.claim(created.token, None)
    received = b"".join([piece async for piece in download.chunks])
    assert received == data
