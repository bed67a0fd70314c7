"""A claimed share's plaintext, decrypted batch by batch as the response sends it.

The share service verifies the first batch (a message: all of it) before the claim
and hands the stream over in a ``Download``; closing the stream deletes the blob.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable
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


# Batches decrypted ahead of the socket. From a local disk a batch is read and decrypted
# on the event loop (see storage/local.py), so this only bounds memory; from S3 it keeps
# the next GetObject read under way while the last batch is sent.
READ_AHEAD_BATCHES = 2


class PlaintextStream:
    """The decrypted file, batch by batch, read and decrypted ahead while earlier ones are sent.

    The first batch (or, for a message, every batch) is read and verified by
    ``prefetch`` before the share is claimed. Once the response starts, one producer
    task reads and decrypts up to ``READ_AHEAD_BATCHES`` batches ahead of the socket.
    ``aclose`` (called by Quart when the response ends, completed or not) stops the
    producer and deletes the blob once the producer has let go of the file. If the
    response never starts, the share is already claimed, so the janitor removes the
    orphaned blob on its next pass.
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
        self._error: Exception | None = None  # what stopped the producer, for the sender
        self._changed = asyncio.Event()  # a batch was added, or taken
        self._producer: asyncio.Task[None] | None = None
        self._closed = False
        self._cleaned = False

    async def prefetch(self, *, everything: bool) -> None:
        """Decrypt the first batch, or all of them; raises ``DecryptionError`` on damage."""
        while True:
            self._ready.append(await self._next_batch())
            if self._opener.finished or not everything:
                return

    def close_unclaimed(self) -> None:
        """Let go of the blob without deleting it: the share was not claimed by us."""
        self._closed = True
        self._cleaned = True
        self._ready.clear()
        self._reader.close()

    def __aiter__(self) -> PlaintextStream:
        return self

    async def __anext__(self) -> bytes:
        if self._producer is None and not self._closed and not self._opener.finished:
            self._producer = asyncio.ensure_future(self._produce())
        while not self._ready:
            if self._error is not None:
                # Headers are already sent: all that is left is to stop short, which the
                # client sees as a body shorter than its Content-Length.
                if isinstance(self._error, DecryptionError):
                    log.error(
                        "blob for share %s failed authentication mid-stream", self._share_id[:8]
                    )
                await self.aclose()
                raise self._error
            if self._closed or self._producer is None or self._producer.done():
                await self.aclose()
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()
        data = self._ready.popleft()
        self._changed.set()
        return data

    async def _produce(self) -> None:
        try:
            while not self._closed and not self._opener.finished:
                while len(self._ready) >= READ_AHEAD_BATCHES and not self._closed:
                    self._changed.clear()
                    await self._changed.wait()
                if self._closed:
                    break
                try:
                    batch = await self._next_batch()
                except Exception as error:  # damage, or a store that failed: the sender raises it
                    self._error = error
                    break
                if self._closed:
                    break
                self._ready.append(batch)
                self._changed.set()
        finally:
            self._changed.set()
            if self._closed:
                self._cleanup()

    def _next_batch(self) -> Awaitable[bytes]:
        return self._reader.process(self._opener.batch_ciphertext_bytes, self._decrypt)

    def _decrypt(self, ciphertext: memoryview) -> bytes:
        if not ciphertext:
            raise DecryptionError("blob ended early")
        return bytes(self._opener.open(ciphertext))

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ready.clear()
        self._changed.set()
        # A read may still be under way in a thread: the producer cleans up once it ends.
        if self._producer is None or self._producer.done():
            self._cleanup()

    def _cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
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
