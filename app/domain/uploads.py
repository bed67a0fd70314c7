"""A new share as it arrives: what an uploader sends, and the pipeline that seals it.

``ShareService.create`` reads an upload's parts in the order they come (the small
fields and at most one file, whose bytes arrive as they are received) and streams the
file through an ``Upload``: plaintext in, sealed batches out to the blob store, then
the record that makes the share live. The web layer turns a multipart body into these
parts; nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass
from typing import Protocol

from .. import logs, metrics
from ..errors import UploadTooLarge
from . import crypto
from .crypto import Argon2Params, Envelope
from .heartbeat import start_heartbeat
from .metadata import (
    MAX_SEALED_ENVELOPE_BYTES,
    SALT_BYTES,
    MetadataStore,
    ShareKind,
    ShareRecord,
)
from .passwords import Argon2Pool
from .storage import INLINE_IO_BYTES, BlobSink

log = logging.getLogger(__name__)

MIN_UPLOAD_BUFFER = 64 * 1024

# --- what an upload is made of, in the order it arrives ---


@dataclass(frozen=True, slots=True)
class Password:
    value: str  # empty: no password


@dataclass(frozen=True, slots=True)
class Expiry:
    value: str  # seconds, as sent: it must be one of the offered choices


@dataclass(frozen=True, slots=True)
class Text:
    value: str  # the message, if the share is one


@dataclass(frozen=True, slots=True)
class ProgressId:
    value: str  # where the uploader's page looks for this upload's progress


@dataclass(frozen=True, slots=True)
class IncomingFile:
    """The file of the share; its bytes are read from ``chunks`` as they arrive."""

    name: str  # empty: a file input left empty
    content_type: str
    chunks: AsyncIterable[bytes | memoryview]


@dataclass(frozen=True, slots=True)
class StrayFile:
    """A file sent besides the share's one file: the upload is refused."""


UploadPart = Password | Expiry | Text | ProgressId | IncomingFile | StrayFile


class UploadSource(Protocol):
    """Where an upload is read from: its parts in order, and how many bytes have come."""

    @property
    def declared_bytes(self) -> int | None:
        """The size the whole upload announced, if it did."""
        ...

    @property
    def received_bytes(self) -> int: ...

    def parts(self) -> AsyncGenerator[UploadPart, None]: ...


@dataclass(slots=True)
class ShareDraft:
    """The uploader's choices as far as they were accepted, filled in as they arrive:
    a refused upload can be shown again as it was filled in."""

    password: str = ""
    expires_in: int | None = None  # None: the default expiry
    text: str | None = None


@dataclass(frozen=True, slots=True)
class ShareOptions:
    """The uploader's choices, checked: the password (empty: none) and the lifetime."""

    password: bytes
    lifetime: int  # seconds


@dataclass(frozen=True, slots=True)
class CreatedShare:
    token: str
    revoke_token: str
    share_id: str
    kind: ShareKind
    size: int
    protected: bool
    expires_at: float


class Upload:
    """Plaintext in, sealed 1 MiB batches out to a ``.part`` file.

    The event loop seals each batch inline (about 0.3 ms per MiB). A local disk is
    written inline too (see ``storage/local.py``: a thread per batch made the GIL
    change hands so often that uploads ran at half the speed for twice the CPU); an
    object store's write stays in flight while the next batch is received and sealed.
    Reading the body is pull-based (``web/streaming.py``), so a slow disk slows the
    client instead of filling memory.
    """

    def __init__(
        self,
        token: bytes,
        share_id: str,
        writer: BlobSink,
        *,
        metadata: MetadataStore,
        argon2: Argon2Pool,
        argon2_params: Argon2Params,
        mark_seconds: int,
        limit_bytes: int,
        batch_chunks: int,
    ) -> None:
        self._token = token
        self.share_id = share_id
        self._writer = writer
        self._metadata = metadata
        self._argon2 = argon2
        self._argon2_params = argon2_params
        self._limit_bytes = limit_bytes
        self._file_key = os.urandom(crypto.KEY_BYTES)
        self._sealer = crypto.StreamSealer(
            self._file_key, share_id, crypto.DEFAULT_CHUNK_SIZE, batch_chunks
        )
        # The input buffer grows (doubling) to one batch and then stays: an upload that
        # sends a few bytes and stalls holds kilobytes, not the 3 MiB of a full pipeline,
        # and a fast one reallocates only a few times at its start.
        self._batch_bytes = self._sealer.batch_bytes
        self._buffer = bytearray()
        self._filled = 0
        self._writing: asyncio.Future[None] | None = None
        self._header_written = False
        self._done = False
        self.size = 0
        # Kept alive while this process works on the upload, however slow; if the process
        # dies, the mark lapses and the janitor may remove the .part.
        self._heartbeat = start_heartbeat(
            lambda: metadata.mark_uploading(share_id, mark_seconds),
            mark_seconds,
            f"the upload mark of {share_id[:8]}",
        )

    async def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.size > self._limit_bytes:
            raise UploadTooLarge(limit_bytes=self._limit_bytes)
        view = memoryview(data)
        while view:
            # A full buffer goes out only once more data proves it is not the last.
            if self._filled == self._batch_bytes:
                await self._seal_batch(final=False)
            count = min(len(view), self._batch_bytes - self._filled)
            self._make_room(self._filled + count)
            self._buffer[self._filled : self._filled + count] = view[:count]
            self._filled += count
            view = view[count:]

    def _make_room(self, needed: int) -> None:
        if needed <= len(self._buffer):
            return
        grown = bytearray(
            min(self._batch_bytes, max(needed, 2 * len(self._buffer), MIN_UPLOAD_BUFFER))
        )
        grown[: self._filled] = self._buffer[: self._filled]
        self._buffer = grown

    @property
    def buffered_bytes(self) -> int:
        """Memory this upload's buffers hold now (input and sealed output)."""
        return len(self._buffer) + self._sealer.buffered_bytes

    async def _seal_batch(self, *, final: bool) -> None:
        # The sealer alternates two output buffers, so this batch can be sealed
        # while the previous one is still being written.
        sealed = self._sealer.seal(memoryview(self._buffer)[: self._filled], final=final)
        self._filled = 0
        await self._settle()
        pieces: tuple[bytes | memoryview, ...] = (sealed,)
        if not self._header_written:
            pieces = (self._sealer.header, sealed)
            self._header_written = True
        if len(sealed) <= INLINE_IO_BYTES:
            await self._writer.write(*pieces)
        else:
            # In flight while the next batch is received and sealed.
            self._writing = asyncio.ensure_future(self._writer.write(*pieces))

    async def _settle(self) -> None:
        """Wait for the write in flight, re-raising what it raised."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def finish(
        self, *, kind: ShareKind, name: str, content_type: str, options: ShareOptions
    ) -> CreatedShare:
        """Seal the last batch, store the blob, then write the record that makes it live."""
        await self._seal_batch(final=True)
        await self._settle()
        await self._writer.commit()

        salt = argon2 = password_hash = None
        if options.password:
            salt = os.urandom(SALT_BYTES)
            assert self._argon2_params.within_bounds  # validated with the settings
            argon2 = self._argon2_params
            password_hash = await self._argon2.hash(argon2, options.password, salt)
        created = await store_share(
            self._metadata,
            SealedShare(
                token=self._token,
                share_id=self.share_id,
                file_key=self._file_key,
                kind=kind,
                size=self.size,
                name=name,
                content_type=content_type,
                lifetime=options.lifetime,
                password_hash=password_hash,
                salt=salt,
                argon2=argon2,
            ),
        )
        self._done = True
        self._heartbeat.cancel()
        return created

    async def abort(self) -> None:
        """Remove every trace of an upload that did not finish. Safe to call twice."""
        if self._done:
            return
        self._done = True
        self._heartbeat.cancel()
        with contextlib.suppress(Exception):
            await self._settle()  # never close the file under a write in flight
        # The .part, or the .blob if the record was what failed to be written.
        await self._writer.discard()
        try:
            await self._metadata.clear_uploading(self.share_id)
        except Exception:
            log.warning(
                "could not clear the upload mark of %s; it expires on its own", self.share_id[:8]
            )


@dataclass(frozen=True, slots=True)
class SealedShare:
    """Everything a share's record is made from once its blob is stored."""

    token: bytes
    share_id: str
    file_key: bytes
    kind: ShareKind
    size: int
    name: str
    content_type: str
    lifetime: int  # seconds
    password_hash: bytes | None = None
    salt: bytes | None = None
    argon2: Argon2Params | None = None


async def store_share(metadata: MetadataStore, share: SealedShare) -> CreatedShare:
    """Seal the envelope and write the record that makes a stored blob a live share
    (a form upload's and a resumable upload's last step)."""
    kek = crypto.key_encryption_key(share.token, share.password_hash)
    sealed = crypto.seal_envelope(
        kek,
        share.share_id,
        Envelope(file_key=share.file_key, name=share.name, content_type=share.content_type),
        crypto.EnvelopeBinding(share.kind, share.size, share.argon2),
    )
    # Names are cut to 255 bytes and types to plain media types before they get here,
    # so a record is always readable back within the bounds.
    assert len(sealed) <= MAX_SEALED_ENVELOPE_BYTES
    now = time.time()
    revoke_token = crypto.new_token()
    record = ShareRecord(
        share_id=share.share_id,
        kind=share.kind,
        size=share.size,
        created_at=now,
        expires_at=now + share.lifetime,
        sealed_envelope=sealed,
        salt=share.salt,
        argon2=share.argon2,
        revoke_id=crypto.revoke_id_for(revoke_token),
    )
    await metadata.create(record)
    metrics.TRANSFERRED.labels("in").inc(share.size)
    logs.event(
        "created",
        share.share_id,
        kind=share.kind,
        size=share.size,
        protected=record.protected,
        expires_in=share.lifetime,
    )
    return CreatedShare(
        token=crypto.encode_token(share.token),
        revoke_token=crypto.encode_token(revoke_token),
        share_id=share.share_id,
        kind=share.kind,
        size=share.size,
        protected=record.protected,
        expires_at=record.expires_at,
    )
