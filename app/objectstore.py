"""Blobs in an S3-compatible object store (``STORAGE_URL=s3://bucket/prefix``).

For several app instances behind one load balancer: they share one Redis and
one bucket. The store only ever sees ciphertext, exactly as the disk does.

Client: obstore (Rust's object_store), chosen over aiobotocore after
bench/s3_clients.py on a local SeaweedFS (64 MiB, MB/s): put 166 vs 113, get
1008 vs 1033. It also streams multipart uploads from a push interface
(``open_writer_async``) without buffering the whole object and without our own
multipart bookkeeping, which aiobotocore would need.

An upload writes straight to ``<prefix>/<id>.blob`` as a multipart upload, so the
object only becomes visible when it is complete; until the record is written the
share's upload mark keeps the janitor away from it. A discarded upload is
completed and deleted, so no orphaned parts stay behind in stores that keep
unfinished multipart uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import obstore
from obstore.store import S3Store

from .storage import BLOB_SUFFIX, INLINE_IO_BYTES, NAME_PATTERN, StoredBlob, StoreFacts

log = logging.getLogger(__name__)
T = TypeVar("T")
# Multipart parts of 8 MiB (S3's minimum is 5 MiB), two in flight: about 24 MiB of
# buffers per upload at most, whatever the file size.
PART_BYTES = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 2
READ_CHUNK = 1024 * 1024


class S3Sink:
    def __init__(self, writer: Any, store: S3BlobStore, key: str) -> None:
        self._writer = writer
        self._store = store
        self._key = key
        self._closed = False

    async def write(self, *pieces: bytes | bytearray | memoryview) -> None:
        for piece in pieces:
            # Copied: the caller reuses its buffers as soon as this returns.
            await self._writer.write(bytes(piece))

    async def commit(self) -> None:
        self._closed = True
        await self._writer.close()

    async def discard(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                await self._writer.close()
        with contextlib.suppress(Exception):
            await obstore.delete_async(self._store.client, self._key)


class S3Source:
    def __init__(self, size: int, chunks: AsyncIterator[Any]) -> None:
        self.size = size
        self._chunks = chunks
        self._pending = bytearray()
        self._ended = False

    async def process(self, count: int, transform: Callable[[memoryview], T]) -> T:
        while len(self._pending) < count and not self._ended:
            try:
                self._pending += bytes(await anext(self._chunks))
            except StopAsyncIteration:
                self._ended = True
        taken = bytes(self._pending[:count])
        del self._pending[:count]
        if len(taken) > INLINE_IO_BYTES:
            return await asyncio.to_thread(transform, memoryview(taken))
        return transform(memoryview(taken))

    def close(self) -> None:
        self._pending.clear()


class S3BlobStore:
    kind = "S3"

    def __init__(
        self,
        url: str,
        *,
        endpoint: str | None,
        access_key: str | None,
        secret_key: str | None,
        region: str,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError("expected s3://bucket/prefix")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        options: dict[str, Any] = {"region": region}
        if endpoint:
            options["endpoint"] = endpoint
            options["virtual_hosted_style_request"] = False
        if access_key and secret_key:
            options["access_key_id"] = access_key
            options["secret_access_key"] = secret_key
        client_options: Any = (
            {"allow_http": True} if endpoint and endpoint.startswith("http:") else {}
        )
        self.client = S3Store(
            self.bucket, prefix=self.prefix or None, client_options=client_options, **options
        )

    @staticmethod
    def key(share_id: str) -> str:
        return f"{share_id}{BLOB_SUFFIX}"

    async def prepare(self) -> None:
        """The bucket must exist; it is the operator's (or the compose file's) to create."""

    async def close(self) -> None:
        """obstore keeps no connection that needs closing."""

    def check_room(self, incoming_bytes: int) -> None:
        """Object stores report no free space; quotas show up as failed writes."""

    async def start(self, share_id: str, expected_bytes: int | None) -> S3Sink:
        writer = obstore.open_writer_async(
            self.client, self.key(share_id), buffer_size=PART_BYTES, max_concurrency=PARTS_IN_FLIGHT
        )
        return S3Sink(writer, self, self.key(share_id))

    async def open(self, share_id: str) -> S3Source:
        result = await obstore.get_async(self.client, self.key(share_id))
        return S3Source(int(result.meta["size"]), aiter(result.stream(min_chunk_size=READ_CHUNK)))

    async def delete(self, share_id: str, size: int | None = None) -> None:
        await self._remove(share_id)

    async def list_stored(self) -> list[StoredBlob]:
        found = []
        async for batch in obstore.list(self.client, chunk_size=1000):
            for meta in batch:
                name = str(meta["path"]).rsplit("/", 1)[-1]
                match = NAME_PATTERN.fullmatch(name)
                if match and match.group(2) == BLOB_SUFFIX:
                    found.append(StoredBlob(match.group(1), "blob", str(meta["path"])))
        return found

    async def delete_stored(self, stored: StoredBlob) -> bool:
        return await self._remove(stored.share_id)

    async def _remove(self, share_id: str) -> bool:
        """Delete the object; False if it was not there."""
        try:
            await obstore.delete_async(self.client, self.key(share_id))
        except FileNotFoundError:
            return False
        return True

    async def healthy(self) -> bool:
        try:
            await obstore.head_async(self.client, "health-probe")
        except FileNotFoundError:
            return True  # the store answered
        except Exception as error:  # unreachable, refused, misconfigured
            log.warning("object store unhealthy: %s", type(error).__name__)
            return False
        return True

    async def facts(self) -> StoreFacts:
        return StoreFacts(self.kind, len(await self.list_stored()), None)
