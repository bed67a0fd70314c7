"""A claimed share's plaintext, decrypted batch by batch as the response sends it.

The share service verifies the first batch (a message: all of it) before the claim
and hands the stream over in a ``Download``; closing the stream deletes the blob.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass

from . import crypto
from .crypto import DecryptionError
from .metadata import ShareKind
from .storage import BlobSource, BlobStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Download:
    kind: ShareKind
    name: str
    content_type: str
    size: int
    chunks: PlaintextStream

    async def read_text(self) -> str:
        """The message of a claimed text share, its blob deleted.

        Its whole blob was decrypted and verified before the claim, so this cannot fail
        half-way through a page.
        """
        try:
            data = b"".join([piece async for piece in self.chunks])
        finally:
            await self.chunks.aclose()
        return data.decode("utf-8", errors="replace")


class PlaintextStream:
    """The decrypted file, in 1 MiB batches, reading the next while the last is sent.

    The first batch (or, for a message, every batch) is read and verified by
    ``prefetch`` before the share is claimed. ``aclose`` (called by Quart when the
    response ends, completed or not) deletes the blob. If the response never starts,
    the share is already claimed, so the janitor removes the orphaned blob on its next
    pass.
    """

    def __init__(
        self,
        reader: BlobSource,
        opener: crypto.StreamOpener,
        blobs: BlobStore,
        share_id: str,
        size: int,
    ) -> None:
        self._reader = reader
        self._opener = opener
        self._blobs = blobs
        self._share_id = share_id
        self._size = size
        self._ready: collections.deque[bytes] = collections.deque()
        self._pending: asyncio.Future[bytes] | None = None
        self._closed = False

    async def prefetch(self, *, everything: bool) -> None:
        """Decrypt the first batch, or all of them; raises ``DecryptionError`` on damage."""
        while True:
            self._ready.append(
                await self._reader.process(self._opener.batch_ciphertext_bytes, self._decrypt)
            )
            if self._opener.finished or not everything:
                return

    def close_unclaimed(self) -> None:
        """Let go of the blob without deleting it: the share was not claimed by us."""
        self._closed = True
        self._ready.clear()
        self._reader.close()

    def __aiter__(self) -> PlaintextStream:
        return self

    async def __anext__(self) -> bytes:
        if self._ready:
            data = self._ready.popleft()
            if not self._ready and not self._closed and not self._opener.finished:
                self._pending = self._read_ahead()
            return data
        if self._pending is None:
            if self._closed or self._opener.finished:
                await self.aclose()
                raise StopAsyncIteration
            self._pending = self._read_ahead()
        try:
            data = await self._pending
        except DecryptionError:
            # Headers are already sent: all that is left is to stop short, which the
            # client sees as a body shorter than its Content-Length.
            log.error("blob for share %s failed authentication mid-stream", self._share_id[:8])
            self._pending = None
            await self.aclose()
            raise
        self._pending = None if self._opener.finished else self._read_ahead()
        return data

    def _read_ahead(self) -> asyncio.Future[bytes]:
        return asyncio.ensure_future(
            self._reader.process(self._opener.batch_ciphertext_bytes, self._decrypt)
        )

    def _decrypt(self, ciphertext: memoryview) -> bytes:
        if not ciphertext:
            raise DecryptionError("blob ended early")
        return bytes(self._opener.open(ciphertext))

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ready.clear()
        pending, self._pending = self._pending, None
        # A read may still be under way: close and delete once it is done.
        if pending is None or pending.done():
            self._cleanup()
        else:
            pending.add_done_callback(self._cleanup)

    def _cleanup(self, abandoned: asyncio.Future[bytes] | None = None) -> None:
        if abandoned is not None and not abandoned.cancelled():
            abandoned.exception()  # nobody will read it; retrieve so it is not logged as lost
        self._reader.close()
        task = asyncio.ensure_future(self._delete())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def _delete(self) -> None:
        try:
            await self._blobs.delete(self._share_id, self._size)
        except Exception:  # the janitor removes what could not be deleted now
            log.warning("could not delete the blob of %s after download", self._share_id[:8])


# Clean-up tasks started from callbacks, kept referenced until they finish.
_BACKGROUND: set[asyncio.Future[None]] = set()
