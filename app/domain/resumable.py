"""Resumable uploads: a share whose file arrives over many requests (the tus protocol).

An upload is created with its length and the uploader's choices, then appended to,
request after request, from wherever the last one stopped, by any worker of any
instance. The bytes are sealed as they arrive into the same STREAM blob as a form
upload; when the last byte is in, the share becomes live exactly as a form upload's.

Secrets. The upload's address carries its own random secret (``upload secret``),
distinct from the share link. Everything a partial upload needs that could open the
blob (the file key, the share token, name, type, the Argon2 output of the password,
the lifetime) is sealed under it in Redis, so nothing on the server opens a partial
blob without that address. Once complete, the share and revoke links are sealed under
it too, for ``OTS_RESUMABLE_RESULT_SECONDS``, so the uploader can fetch them.

Offsets. Only whole sealed chunks are stored: plaintext never touches the disk, not
even the tail of a request that ended mid-chunk. So the offset a request reports is
the last sealed chunk boundary (a multiple of 64 KiB, or the length when complete);
tus clients then send the rest from there, as the protocol's "bytes received and
processed or stored" allows. A request that dies keeps what it sealed up to its
last full batch; the next one cuts the file back to the recorded offset.

One request at a time appends (a lock per upload, renewed while it works); a second
one is refused with ``UploadBusy`` (423, as tusd answers), one from a stale offset
with ``OffsetMismatch`` (409).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import cast

from ..errors import (
    MalformedRequest,
    OffsetMismatch,
    ResumableUnsupported,
    UploadBusy,
    UploadEnded,
    UploadNotFound,
    UploadTooLarge,
)
from . import crypto, keys
from .crypto import Argon2Params
from .heartbeat import start_heartbeat
from .metadata import SALT_BYTES, MetadataStore
from .passwords import Argon2Pool
from .storage import BlobSink, BlobStore, ResumableSink
from .uploads import CreatedShare, SealedShare, store_share

log = logging.getLogger(__name__)

PURPOSE = "tus"
RESULT_PURPOSE = "tus-result"
LOCK_SECONDS = 30
# Sealed and written in batches of this many chunks (1 MiB), as form uploads are.
BATCH_CHUNKS = 16
CHUNK_SIZE = crypto.DEFAULT_CHUNK_SIZE
SEALED_CHUNK = CHUNK_SIZE + crypto.TAG_BYTES


@dataclass(frozen=True, slots=True)
class UploadChoices:
    """What a resumable upload becomes once complete; checked before it is created."""

    name: str
    content_type: str
    password: bytes  # empty: none
    lifetime: int  # seconds the share lives once complete


@dataclass(frozen=True, slots=True)
class UploadState:
    """Where a resumable upload stands (what HEAD tells)."""

    offset: int
    length: int
    expires_at: float  # when an unfinished upload is given up
    complete: bool


@dataclass(frozen=True, slots=True)
class NewUpload:
    secret: str  # the upload's address segment; never stored
    state: UploadState


def upload_id_for(secret: bytes) -> str:
    return crypto.ticket_id(secret, PURPOSE)


def parse_secret(text: str) -> bytes:
    try:
        return crypto.decode_token(text)
    except crypto.InvalidToken:
        raise UploadNotFound() from None


class ResumableUploads:
    def __init__(
        self,
        metadata: MetadataStore,
        blobs: BlobStore,
        argon2: Argon2Pool,
        argon2_params: Argon2Params,
        *,
        max_bytes: int,
        upload_seconds: int,
        result_seconds: int,
    ) -> None:
        self.metadata = metadata
        self.redis = metadata.redis
        self.blobs = blobs
        self.argon2 = argon2
        self.argon2_params = argon2_params
        self.max_bytes = max_bytes
        self.upload_seconds = upload_seconds
        self.result_seconds = result_seconds

    @property
    def supported(self) -> bool:
        return self.blobs.resumable

    # --- creating ---

    async def create(self, length: int, choices: UploadChoices) -> NewUpload:
        if not self.supported:
            raise ResumableUnsupported()
        if length > self.max_bytes:
            raise UploadTooLarge(limit_bytes=self.max_bytes)
        self.blobs.check_room(length)
        secret = crypto.new_token()
        token = crypto.new_token()
        share_id = crypto.share_id_for(token)
        salt = password_hash = None
        if choices.password:
            # Hashed now, while the uploader waits for one small request, not after the
            # last byte; the output is sealed under the upload secret with the rest.
            salt = os.urandom(SALT_BYTES)
            password_hash = await self.argon2.hash(self.argon2_params, choices.password, salt)
        secrets = {
            "token": token.hex(),
            "file_key": os.urandom(crypto.KEY_BYTES).hex(),
            "name": choices.name,
            "type": choices.content_type,
            "lifetime": choices.lifetime,
            "password_hash": password_hash.hex() if password_hash else None,
            "salt": salt.hex() if salt else None,
        }
        upload_id = upload_id_for(secret)
        sealed = crypto.seal_ticket(secret, PURPOSE, upload_id, json.dumps(secrets).encode())
        expires_at = time.time() + self.upload_seconds
        pipeline = self.redis.pipeline(transaction=True)
        pipeline.hset(
            keys.resumable(upload_id),
            mapping={
                "share": share_id,
                "length": length,
                "offset": 0,
                "expires": expires_at,
                "sealed": sealed,
                "a2t": self.argon2_params.time_cost,
                "a2m": self.argon2_params.memory_kib,
                "a2p": self.argon2_params.parallelism,
            },
        )
        pipeline.expire(keys.resumable(upload_id), self.upload_seconds)
        # Outlives the upload and its result window: a vanished upload answers 410.
        pipeline.set(
            keys.resumable_ended(upload_id),
            b"1",
            ex=self.upload_seconds + self.result_seconds,
        )
        # The janitor keeps the .part of a share under an upload mark: as long as the
        # upload may go on, paused or not.
        pipeline.set(keys.upload(share_id), b"1", ex=self.upload_seconds)
        await pipeline.execute()
        state = UploadState(offset=0, length=length, expires_at=expires_at, complete=False)
        return NewUpload(secret=crypto.encode_token(secret), state=state)

    # --- looking ---

    async def state(self, secret_text: str) -> UploadState:
        secret = parse_secret(secret_text)
        fields = await self._fields(upload_id_for(secret))
        return _state_of(fields)

    async def result(self, secret_text: str) -> CreatedShare:
        """The links of a completed upload, within the window after completion."""
        secret = parse_secret(secret_text)
        upload_id = upload_id_for(secret)
        fields = await self._fields(upload_id)
        if b"result" not in fields:
            raise UploadNotFound("upload_incomplete")
        payload = json.loads(
            crypto.open_ticket(secret, RESULT_PURPOSE, upload_id, fields[b"result"])
        )
        return CreatedShare(**payload)

    async def _fields(self, upload_id: str) -> dict[bytes, bytes]:
        fields = cast(dict[bytes, bytes], await self.redis.hgetall(keys.resumable(upload_id)))
        if not fields:
            ended = await self.redis.exists(keys.resumable_ended(upload_id))
            raise UploadEnded() if ended else UploadNotFound()
        return fields

    # --- appending ---

    async def append(
        self, secret_text: str, offset: int, chunks: AsyncIterable[bytes | memoryview]
    ) -> UploadState:
        """Append the bytes sent from ``offset``; the state after them (complete when the
        last byte came). Refused at once when another request is appending."""
        secret = parse_secret(secret_text)
        upload_id = upload_id_for(secret)
        lock = keys.resumable_lock_name(upload_id)
        lease = await self._lock(upload_id)
        heartbeat = start_heartbeat(
            lambda: self.metadata.renew_lock(lock, lease, LOCK_SECONDS),
            LOCK_SECONDS,
            f"the tus lock of {upload_id[:8]}",
        )
        try:
            fields = await self._fields(upload_id)
            state = _state_of(fields)
            if state.complete:
                raise OffsetMismatch(offset=state.length)
            if offset != state.offset:
                raise OffsetMismatch(offset=state.offset)
            return await self._append(secret, upload_id, fields, state, chunks)
        finally:
            heartbeat.cancel()
            await asyncio.shield(self._unlock(lock, lease))

    async def _append(
        self,
        secret: bytes,
        upload_id: str,
        fields: dict[bytes, bytes],
        state: UploadState,
        chunks: AsyncIterable[bytes | memoryview],
    ) -> UploadState:
        secrets = json.loads(crypto.open_ticket(secret, PURPOSE, upload_id, fields[b"sealed"]))
        share_id = fields[b"share"].decode()
        file_key = bytes.fromhex(secrets["file_key"])
        done_chunks = state.offset // CHUNK_SIZE
        stored = crypto.BLOB_HEADER_BYTES + done_chunks * SEALED_CHUNK if done_chunks else 0
        sink = await self.blobs.resume(share_id, stored, state.length)
        sealer = crypto.StreamSealer(
            file_key, share_id, CHUNK_SIZE, BATCH_CHUNKS, first_chunk=done_chunks
        )
        batch_bytes = sealer.batch_bytes
        buffer = bytearray(min(batch_bytes, max(state.length - state.offset, 1)))
        filled = 0
        position = state.offset  # plaintext bytes stored
        received = state.offset

        async def seal(count: int, *, final: bool) -> None:
            nonlocal filled, position
            sealed = sealer.seal(memoryview(buffer)[:count], final=final)
            pieces: tuple[bytes | memoryview, ...] = (sealed,)
            if position == 0:
                pieces = (sealer.header, sealed)
            await sink.write(*pieces)
            position += count
            remainder = filled - count
            buffer[:remainder] = buffer[count:filled]
            filled = remainder

        try:
            async for data in chunks:
                view = memoryview(data)
                received += len(view)
                if received > state.length:
                    raise MalformedRequest("upload_beyond_length")
                while view:
                    take = min(len(view), len(buffer) - filled)
                    buffer[filled : filled + take] = view[:take]
                    filled += take
                    view = view[take:]
                    # Whole batches go out as they fill, all but the file's last chunk.
                    if filled == len(buffer) and position + filled < state.length:
                        await seal(filled, final=False)
            if position + filled == state.length:
                await seal(filled, final=True)
            elif whole := filled - filled % CHUNK_SIZE:
                await seal(whole, final=False)  # the tail of a part chunk is dropped
        except BaseException:
            # What was sealed stays; the request's tail is dropped, as on any ending.
            await asyncio.shield(self._record_offset(upload_id, sink, position))
            raise
        if position == state.length:
            return await self._complete(secret, upload_id, share_id, secrets, sink, state)
        await self._record_offset(upload_id, sink, position)
        return UploadState(position, state.length, state.expires_at, complete=False)

    async def _record_offset(self, upload_id: str, sink: ResumableSink, position: int) -> None:
        try:
            await sink.pause()
            await self.redis.hset(keys.resumable(upload_id), "offset", position)
        except Exception:
            log.warning("could not record the offset of upload %s", upload_id[:8])

    async def _complete(
        self,
        secret: bytes,
        upload_id: str,
        share_id: str,
        secrets: dict[str, object],
        sink: BlobSink,
        state: UploadState,
    ) -> UploadState:
        await sink.commit()
        password_hash = _hex_or_none(secrets["password_hash"])
        salt = _hex_or_none(secrets["salt"])
        fields = await self._fields(upload_id)
        argon2 = None
        if password_hash is not None:
            argon2 = Argon2Params(
                time_cost=int(fields[b"a2t"]),
                memory_kib=int(fields[b"a2m"]),
                parallelism=int(fields[b"a2p"]),
            )
        created = await store_share(
            self.metadata,
            SealedShare(
                token=bytes.fromhex(cast(str, secrets["token"])),
                share_id=share_id,
                file_key=bytes.fromhex(cast(str, secrets["file_key"])),
                kind="file",
                size=state.length,
                name=cast(str, secrets["name"]),
                content_type=cast(str, secrets["type"]),
                lifetime=cast(int, secrets["lifetime"]),
                password_hash=password_hash,
                salt=salt,
                argon2=argon2,
            ),
        )
        result = crypto.seal_ticket(
            secret,
            RESULT_PURPOSE,
            upload_id,
            json.dumps(
                {
                    "token": created.token,
                    "revoke_token": created.revoke_token,
                    "share_id": created.share_id,
                    "kind": created.kind,
                    "size": created.size,
                    "protected": created.protected,
                    "expires_at": created.expires_at,
                }
            ).encode(),
        )
        # The upload's own secrets are shredded; only the links stay, for the window.
        key = keys.resumable(upload_id)
        pipeline = self.redis.pipeline(transaction=True)
        pipeline.hdel(key, "sealed")
        pipeline.hset(key, mapping={"offset": state.length, "result": result})
        pipeline.expire(key, self.result_seconds)
        await pipeline.execute()
        return UploadState(state.length, state.length, state.expires_at, complete=True)

    # --- ending ---

    async def terminate(self, secret_text: str) -> None:
        """Delete an upload and everything it stored (tus termination). A completed one
        is a live share by now: only its links window closes; the share stays."""
        secret = parse_secret(secret_text)
        upload_id = upload_id_for(secret)
        lock = keys.resumable_lock_name(upload_id)
        lease = await self._lock(upload_id)
        try:
            fields = await self._fields(upload_id)
            share_id = fields[b"share"].decode()
            pipeline = self.redis.pipeline(transaction=True)
            pipeline.delete(keys.resumable(upload_id))
            pipeline.set(keys.resumable_ended(upload_id), b"1", ex=self.upload_seconds)
            if b"result" not in fields:
                pipeline.delete(keys.upload(share_id))
            await pipeline.execute()
            if b"result" not in fields:
                await self.blobs.delete(share_id, int(fields[b"length"]))
        finally:
            await asyncio.shield(self._unlock(lock, lease))

    async def _lock(self, upload_id: str) -> str:
        """Hold the upload for one request, or refuse at once (423)."""
        lease = await self.metadata.acquire_lock(keys.resumable_lock_name(upload_id), LOCK_SECONDS)
        if lease is None:
            await self._fields(upload_id)  # 404/410 beats 423 for an upload that ended
            raise UploadBusy()
        return lease

    async def _unlock(self, lock: str, lease: str) -> None:
        try:
            await self.metadata.release_lock(lock, lease)
        except Exception:
            log.warning("could not release a tus lock; it lapses on its own")


def _hex_or_none(value: object) -> bytes | None:
    return bytes.fromhex(value) if isinstance(value, str) else None


def _state_of(fields: dict[bytes, bytes]) -> UploadState:
    length = int(fields[b"length"])
    return UploadState(
        offset=int(fields[b"offset"]),
        length=length,
        expires_at=float(fields[b"expires"]),
        complete=b"result" in fields,
    )
