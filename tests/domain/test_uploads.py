"""What an upload in progress holds while it waits for its client: little memory, no file.

Measured with tracemalloc on the real share service (Redis, disk): every buffer an
upload holds is a Python allocation, so a stalled upload that allocated a whole
pipeline's worth of buffers up front shows up here.
"""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import AsyncGenerator

from quart import Quart

from onetimeshare.config import Settings
from onetimeshare.domain.uploads import IncomingFile, ShareDraft, UploadPart

STALLED = 20
KIB = 1024


class StallingUpload:
    """An upload that declares the largest file allowed, sends 100 bytes and stalls."""

    def __init__(self, declared_bytes: int) -> None:
        self.declared_bytes = declared_bytes
        self.received_bytes = 100
        self.stalled = asyncio.Event()

    async def parts(self) -> AsyncGenerator[UploadPart, None]:
        yield IncomingFile("f.bin", "application/octet-stream", self._chunks())

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        yield os.urandom(100)
        # Asked for more: the 100 bytes are in the upload. Nothing more ever comes.
        self.stalled.set()
        await asyncio.Event().wait()


async def test_stalled_uploads_hold_kilobytes_and_no_file(app: Quart, settings: Settings) -> None:
    shares = app.extensions["onetimeshare"].shares
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        sources = [StallingUpload(settings.max_upload_bytes) for _ in range(STALLED)]
        uploads = [asyncio.create_task(shares.create(source, ShareDraft())) for source in sources]
        try:
            await asyncio.gather(*(source.stalled.wait() for source in sources))
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            # Cancelled like a request whose client went away: each cleans up after itself.
            for upload in uploads:
                upload.cancel()
            await asyncio.gather(*uploads, return_exceptions=True)
    finally:
        tracemalloc.stop()
    # A full pipeline is about 3 MiB per upload (1 MiB in, two sealed 1 MiB batches out).
    assert held < STALLED * 256 * KIB, f"{held // KIB} KiB for {STALLED} stalled uploads"
    assert all(upload.cancelled() for upload in uploads)
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
            options=shares.options(ShareDraft()),
        )
    except BaseException:
        await upload.abort()
        raise
    download = await shares.claim(created.token, None)
    received = b"".join([piece async for piece in download.chunks])
    assert received == data
