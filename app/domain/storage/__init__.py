"""Where ciphertext lives: the blob store interface, shared by both stores.

A store only ever receives ciphertext. Two implementations:

* ``LocalBlobStore`` (``local.py``, default): ``<id>.part`` while uploading, renamed
  to ``<id>.blob`` when complete, in the data directory.
* ``S3BlobStore`` (``s3.py``, ``STORAGE_URL=s3://bucket/prefix``) for several
  instances sharing one S3-compatible store.

Both are used the same way by the share lifecycle: a sink to stream an upload
into, a source to stream a download out of, deletes, and a listing for the
janitor.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

T = TypeVar("T")
PART_SUFFIX = ".part"
BLOB_SUFFIX = ".blob"
NAME_PATTERN = re.compile(r"([0-9a-f]{32})(\.part|\.blob)")

# Opening, renaming or unlinking a file runs on the event loop for files up to this
# size: it takes less time than handing the call to a thread and waking the loop when
# it is done (bench/load.py, 4 KiB shares). Unlinking a big file frees many extents,
# so that goes to a thread. (Reads and writes of batches are always inline: local.py.)
INLINE_IO_BYTES = 256 * 1024


class StoreSetupError(RuntimeError):
    """The blob store cannot be used as configured; the message says why and what to do."""


class StoreUnreachable(StoreSetupError):
    """The object store did not answer; it may still be starting."""


async def file_io(size: int | None, function: Callable[..., T], *arguments: object) -> T:
    """Run blocking work inline for small files, in a thread otherwise."""
    if size is not None and size <= INLINE_IO_BYTES:
        return function(*arguments)
    return await asyncio.to_thread(function, *arguments)


@dataclass(frozen=True, slots=True)
class StoredBlob:
    share_id: str
    state: Literal["part", "blob"]
    key: str


@dataclass(frozen=True, slots=True)
class UnfinishedUpload:
    """A multipart upload the object store holds open: its parts take space until
    someone completes or aborts it."""

    share_id: str
    started_at: float  # Unix time, by the store's clock
    key: str
    upload_id: str


@dataclass(frozen=True, slots=True)
class StoreFacts:
    kind: str
    blobs: int
    free_bytes: int | None


class BlobSink(Protocol):
    async def write(self, *pieces: bytes | bytearray | memoryview) -> None: ...
    async def commit(self) -> None: ...
    async def discard(self) -> None: ...


class ResumableSink(BlobSink, Protocol):
    async def pause(self) -> None:
        """Close for now, what was written kept: the upload goes on in a later request."""
        ...


class BlobSource(Protocol):
    size: int

    async def process(self, count: int, transform: Callable[[memoryview], T]) -> T:
        """Read up to ``count`` next bytes (fewer at the end) and hand them to ``transform``
        (the local store reads and transforms on the event loop, S3 hands big reads to
        a thread)."""
        ...

    def close(self) -> None: ...


class BlobStore(Protocol):
    kind: str
    resumable: bool  # can keep an upload open across requests (``resume``)

    async def prepare(self) -> None: ...
    async def close(self) -> None: ...
    async def start(self, share_id: str, expected_bytes: int | None) -> BlobSink: ...
    async def resume(
        self, share_id: str, stored_bytes: int, expected_bytes: int
    ) -> ResumableSink: ...
    async def open(self, share_id: str) -> BlobSource:
        """Raise FileNotFoundError when there is no such blob."""
        ...

    async def delete(self, share_id: str, size: int | None = None) -> None: ...
    async def list_stored(self) -> list[StoredBlob]: ...
    async def delete_stored(self, stored: StoredBlob) -> bool: ...
    async def list_unfinished(self) -> list[UnfinishedUpload]:
        """Uploads begun and neither completed nor aborted (object stores only)."""
        ...

    async def abort_unfinished(self, unfinished: UnfinishedUpload) -> bool: ...
    def check_room(self, incoming_bytes: int) -> None: ...
    async def healthy(self) -> bool: ...
    async def facts(self) -> StoreFacts: ...
