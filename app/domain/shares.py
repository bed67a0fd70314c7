"""The share lifecycle: create from a stream, inspect without consuming, claim once, destroy.

This module ties crypto, blob storage and Redis metadata together; it knows
nothing about HTTP. Routes parse the request, call in here, and render.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import TypeVar

import redis.exceptions

from .. import logs, metrics
from ..config import Settings
from ..errors import (
    GoneReason,
    InvalidInput,
    PasswordCheckBusy,
    PasswordRequired,
    ShareDestroyed,
    ShareError,
    ShareGone,
    ShareNotFound,
    StorageUnavailable,
    UploadTooLarge,
    WrongPassword,
)
from ..formatting import human_bytes
from . import crypto
from .crypto import DecryptionError, Envelope, InvalidToken
from .heartbeat import start_heartbeat
from .metadata import (
    MAX_SEALED_ENVELOPE_BYTES,
    SALT_BYTES,
    CheckReservation,
    CorruptRecord,
    MetadataStore,
    ShareKind,
    ShareRecord,
)
from .passwords import Argon2Pool
from .storage import INLINE_IO_BYTES, BlobSink, BlobSource, BlobStore

log = logging.getLogger(__name__)

T = TypeVar("T")
BATCH_CHUNKS = 16  # 16 x 64 KiB: crypto and disk work in 1 MiB batches
MIN_UPLOAD_BUFFER = 64 * 1024
# A reserved password check lapses this long after its last renewal, so a worker that
# dies mid-Argon2 gives its try back; a check that is still running renews it on a
# heartbeat, however long its hash takes.
CHECK_LEASE_SECONDS = 30.0
UNLOCK_PURPOSE = "unlock"
# How long the proof of a checked password may wait for the download form it is in.
UNLOCK_PROOF_SECONDS = 300


def batch_chunks_for(size: int | None) -> int:
    """Chunks per batch: 1 MiB for big transfers, less for small ones, whose buffers
    would otherwise be mostly empty (32 concurrent 4 KiB shares took 420 MiB)."""
    if size is None:
        return BATCH_CHUNKS
    return max(1, min(BATCH_CHUNKS, -(-size // crypto.DEFAULT_CHUNK_SIZE)))


@dataclass(frozen=True, slots=True)
class CreatedShare:
    token: str
    revoke_token: str
    share_id: str
    kind: ShareKind
    size: int
    protected: bool
    expires_at: float


@dataclass(frozen=True, slots=True)
class ShareView:
    """What the landing page may show, without consuming anything."""

    share_id: str
    kind: ShareKind
    size: int
    protected: bool
    expires_at: float
    tries_left: int
    name: str | None  # None for protected shares: the name is sealed with the password


@dataclass(frozen=True, slots=True)
class ShareStatus:
    """A share as its link sees it now: live, or gone and why."""

    live: ShareView | None
    gone_reason: GoneReason | None


@dataclass(slots=True)
class Download:
    kind: ShareKind
    name: str
    content_type: str
    size: int
    chunks: PlaintextStream


class ShareService:
    def __init__(
        self, settings: Settings, metadata: MetadataStore, blobs: BlobStore, argon2: Argon2Pool
    ) -> None:
        self.settings = settings
        self.metadata = metadata
        self.blobs = blobs
        self.argon2 = argon2
        self.check_lease_seconds = CHECK_LEASE_SECONDS

    # --- creating ---

    async def begin_upload(self, declared_bytes: int | None = None) -> Upload:
        """Start a share; the caller streams plaintext into it, then finishes or aborts."""
        if declared_bytes is not None and declared_bytes > self.max_request_bytes:
            raise UploadTooLarge(self.too_large_message)
        self.blobs.check_room(declared_bytes or 0)
        token = crypto.new_token()
        share_id = crypto.share_id_for(token)
        await self.metadata.mark_uploading(share_id, self.upload_mark_ttl)
        try:
            writer = await self.blobs.start(share_id, declared_bytes)
        except BaseException:
            await self.metadata.clear_uploading(share_id)
            raise
        return Upload(self, token, share_id, writer, batch_chunks_for(declared_bytes))

    @property
    def max_request_bytes(self) -> int:
        """Largest request body accepted: the file plus room for the other form fields."""
        return self.settings.max_upload_bytes + 64 * 1024

    @property
    def too_large_message(self) -> str:
        return f"Files can be at most {human_bytes(self.settings.max_upload_bytes)}."

    @property
    def upload_mark_ttl(self) -> int:
        return self.settings.upload_mark_seconds

    def validate_expiry(self, expires_in: int | None) -> int:
        if expires_in is None:
            return self.settings.default_expiry
        if expires_in not in self.settings.expiry_choices:
            raise InvalidInput("Choose one of the offered expiry times.")
        return expires_in

    def validate_password(self, password: str) -> bytes:
        encoded = password.encode("utf-8")
        if len(encoded) > self.settings.max_password_bytes:
            raise InvalidInput(
                f"The password can be at most {self.settings.max_password_bytes} bytes long."
            )
        return encoded

    # --- looking without consuming ---

    async def inspect(self, token_text: str) -> ShareView:
        token, share_id = _parse_token(token_text)
        return await self._view(token, await self._live_record(share_id))

    async def status(self, token_text: str) -> ShareStatus:
        """Live or gone, without raising for gone: countdowns must flip to a final state."""
        try:
            return ShareStatus(live=await self.inspect(token_text), gone_reason=None)
        except ShareGone as gone:
            return ShareStatus(live=None, gone_reason=gone.reason)

    async def unlock(self, token_text: str, password: str | None) -> Unlocked:
        """Check a password without consuming the share; wrong ones count as usual.

        A right password earns a single-use unlock proof that the download form carries
        instead of the password (see ``claim``).
        """
        token, share_id = _parse_token(token_text)
        record = await self._live_record(share_id)
        if not record.protected:
            return Unlocked(await self._view(token, record), proof=None)
        check = await self._check_password(token, record, password)
        # Gives the try back, and says atomically whether the share still exists.
        if not await self.metadata.release_check(check.reservation):
            # Right, but the share ended while the password was being checked: the same
            # answer as every other guess that lost that race.
            raise ShareGone(await self.metadata.gone_reason(share_id))
        proof = await self._issue_unlock_proof(share_id, check.password_hash)
        return Unlocked(_share_view(record, None, self.settings), proof=proof)

    async def _view(self, token: bytes, record: ShareRecord) -> ShareView:
        name = None
        if not record.protected:
            name = (await self._open_envelope(token, record, None)).name
        return _share_view(record, name, self.settings)

    # --- the one-time download ---

    async def claim(
        self, token_text: str, password: str | None, unlock_proof: str | None = None
    ) -> Download:
        """Check the password (or redeem an unlock proof), verify the blob's first batch,
        claim the share atomically and return its decrypted stream.

        After this returns the share no longer exists in Redis; the blob is
        deleted when the stream ends, completed or not.
        """
        token, share_id = _parse_token(token_text)
        record = await self._live_record(share_id)
        reservation: CheckReservation | None = None
        won = False
        try:
            if not record.protected:
                envelope = await self._open_envelope(token, record, None)
            elif unlock_proof and not password:
                envelope = await self._redeem_unlock_proof(token, record, unlock_proof)
            else:
                check = await self._check_password(token, record, password)
                envelope, reservation = check.envelope, check.reservation
            stream = await self._verified_stream(envelope, record)
            try:
                won = await self.metadata.claim(share_id)
            except BaseException:
                stream.close_unclaimed()
                raise
        finally:
            if reservation is not None and not won:
                # A claim that won dropped the lease with the record; after anything else
                # (a lost blob, an outage) this gives the try back.
                await asyncio.shield(self._release_quietly(reservation))
        if not won:
            stream.close_unclaimed()
            raise ShareGone(await self.metadata.gone_reason(share_id))
        logs.event("downloaded", share_id, kind=record.kind, size=record.size)
        metrics.TRANSFERRED.labels("out").inc(record.size)
        return Download(
            kind=record.kind,
            name=envelope.name,
            content_type=envelope.content_type,
            size=record.size,
            chunks=stream,
        )

    async def read_text(self, download: Download) -> str:
        """The message of a claimed text share, its blob deleted.

        Its whole blob was decrypted and verified before the claim, so this cannot fail
        half-way through a page.
        """
        try:
            data = b"".join([piece async for piece in download.chunks])
        finally:
            await download.chunks.aclose()
        return data.decode("utf-8", errors="replace")

    # --- passwords ---

    async def _check_password(
        self, token: bytes, record: ShareRecord, password: str | None
    ) -> PasswordCheck:
        """Evaluate one guess under a reserved try; raise for a wrong one (counted).

        The try is reserved in Redis before Argon2 runs and only if the tries already
        made plus the checks in flight leave room, so however many guesses arrive at
        once, at most ``max_password_tries`` are ever evaluated.
        """
        assert record.salt is not None and record.argon2 is not None
        max_tries = self.settings.max_password_tries
        if not password:
            what = "message" if record.kind == "text" else "file"
            raise PasswordRequired(
                f"This {what} is protected. Enter the password to open it.",
                _tries_left(record, self.settings),
            )
        encoded = self.validate_password(password)
        async with self.argon2.turn() as turn:
            reservation = await self.metadata.reserve_check(
                record.share_id, max_tries, self.check_lease_seconds
            )
            if reservation.outcome == "spent":
                # The limit was lowered below the tries this share already had.
                logs.event("destroyed", record.share_id, reason="too many wrong passwords")
                await self._delete_blob(record.share_id)
            if reservation.outcome in ("gone", "spent"):
                raise ShareGone(await self.metadata.gone_reason(record.share_id))
            if reservation.outcome == "busy":
                raise PasswordCheckBusy(
                    "Another attempt at this password is being checked right now. "
                    "Wait a second and try again."
                )
            # Renewed while the hash runs, however long it takes; a worker that dies
            # mid-check stops renewing, and its try comes back when the lease lapses.
            heartbeat = start_heartbeat(
                lambda: self.metadata.renew_check(reservation, self.check_lease_seconds),
                self.check_lease_seconds,
                f"a password check of {record.share_id[:8]}",
            )
            try:
                password_hash = await turn.hash(record.argon2, encoded, record.salt)
            except BaseException:
                await asyncio.shield(self._release_quietly(reservation))
                raise
            finally:
                heartbeat.cancel()
        try:
            envelope = crypto.open_envelope(
                crypto.key_encryption_key(token, password_hash),
                record.share_id,
                record.sealed_envelope,
                _binding(record),
            )
        except DecryptionError:
            metrics.PASSWORD_CHECKS.labels("wrong").inc()
            raise await self._failed_attempt(record, reservation) from None
        metrics.PASSWORD_CHECKS.labels("right").inc()
        return PasswordCheck(envelope, password_hash, reservation)

    async def _failed_attempt(
        self, record: ShareRecord, reservation: CheckReservation
    ) -> ShareError:
        """Count a wrong password and say what it cost."""
        left = await self.metadata.settle_wrong(reservation, self.settings.max_password_tries)
        logs.event("wrong_password", record.share_id, tries_left=max(0, left))
        if left < 0:
            return ShareGone(await self.metadata.gone_reason(record.share_id))
        if left == 0:
            logs.event("destroyed", record.share_id, reason="too many wrong passwords")
            await self._delete_blob(record.share_id)
            return ShareDestroyed(
                "Wrong password. That was the last try: the share has been "
                "destroyed and can no longer be opened."
            )
        plural = "try" if left == 1 else "tries"
        return WrongPassword(
            f"Wrong password. {left} {plural} left before the share is destroyed.", left
        )

    async def _release_quietly(self, reservation: CheckReservation) -> None:
        """Give a reserved try back; if Redis is unreachable the lease lapses on its own."""
        try:
            await self.metadata.release_check(reservation)
        except (redis.exceptions.RedisError, OSError):
            log.warning("could not release a password check of %s", reservation.share_id[:8])

    async def _issue_unlock_proof(self, share_id: str, password_hash: bytes) -> str:
        ticket = crypto.new_token()
        sealed = crypto.seal_ticket(ticket, UNLOCK_PURPOSE, share_id, password_hash)
        await self.metadata.store_ticket(
            UNLOCK_PURPOSE,
            crypto.ticket_id(ticket, UNLOCK_PURPOSE),
            share_id,
            sealed,
            UNLOCK_PROOF_SECONDS,
        )
        return crypto.encode_token(ticket)

    async def _redeem_unlock_proof(
        self, token: bytes, record: ShareRecord, proof_text: str
    ) -> Envelope:
        """The envelope, opened with the Argon2 output an unlock proof carries; single use."""
        expired = PasswordRequired(
            "The password check has expired. Enter the password again.",
            _tries_left(record, self.settings),
        )
        try:
            ticket = crypto.decode_token(proof_text)
        except InvalidToken:
            raise expired from None
        taken = await self.metadata.take_ticket(
            UNLOCK_PURPOSE, crypto.ticket_id(ticket, UNLOCK_PURPOSE)
        )
        if taken is None or taken[0] != record.share_id:
            raise expired
        try:
            password_hash = crypto.open_ticket(ticket, UNLOCK_PURPOSE, record.share_id, taken[1])
            return crypto.open_envelope(
                crypto.key_encryption_key(token, password_hash),
                record.share_id,
                record.sealed_envelope,
                _binding(record),
            )
        except DecryptionError:
            raise expired from None

    # --- revoking, by the uploader ---

    async def revoke_status(self, revoke_text: str) -> ShareStatus:
        share_id = await self._revoked_share_id(revoke_text)
        if share_id is None:
            return ShareStatus(live=None, gone_reason="unknown")
        record = await self._record(share_id)
        if record is None:
            return ShareStatus(live=None, gone_reason=await self.metadata.gone_reason(share_id))
        # The revoke page has no share link at hand, so no name: the view stays anonymous.
        return ShareStatus(live=_share_view(record, None, self.settings), gone_reason=None)

    async def revoke(self, revoke_text: str) -> ShareStatus:
        """Destroy a share before anyone downloads it; says what happened if it was already gone."""
        share_id = await self._revoked_share_id(revoke_text)
        if share_id is None:
            return ShareStatus(live=None, gone_reason="unknown")
        if await self._destroy(share_id, by="sender"):
            return ShareStatus(live=None, gone_reason="revoked")
        return ShareStatus(live=None, gone_reason=await self.metadata.gone_reason(share_id))

    async def revoke_by_id(self, share_id: str) -> bool:
        """The admin's revoke: by share id, which the admin sees and the public never does."""
        return await self._destroy(share_id, by="admin")

    async def _destroy(self, share_id: str, *, by: str) -> bool:
        """Claim the share as revoked and delete its blob; False if it was already gone."""
        if not await self.metadata.claim(share_id, reason="revoked"):
            return False
        logs.event("revoked", share_id, by=by)
        await self._delete_blob(share_id)
        return True

    async def _revoked_share_id(self, revoke_text: str) -> str | None:
        return await self.metadata.revoke_target(self._revoke_id(revoke_text))

    @staticmethod
    def _revoke_id(revoke_text: str) -> str:
        try:
            revoke_token = crypto.decode_token(revoke_text)
        except InvalidToken:
            raise ShareNotFound("This revoke link is not valid.") from None
        return crypto.revoke_id_for(revoke_token)

    # --- the blob, checked before the claim ---

    async def _verified_stream(self, envelope: Envelope, record: ShareRecord) -> PlaintextStream:
        """Open the blob and decrypt its first batch (a message: all of it) before the claim.

        A blob that is missing, cut, or fails authentication where it starts is found
        here, while an honest answer is still possible: the share ends as lost instead of
        being used up by a download that would break off. Damage further into a large
        file can only show as a connection cut short once the headers are out.
        """
        try:
            reader = await self.blobs.open(record.share_id)
        except FileNotFoundError:
            raise await self._lose(record.share_id, "blob missing") from None
        except Exception as error:
            raise _store_unavailable(record.share_id, error) from None
        try:
            header = await reader.process(crypto.BLOB_HEADER_BYTES, bytes)
            opener = crypto.StreamOpener(
                envelope.file_key,
                record.share_id,
                header,
                reader.size,
                batch_chunks_for(record.size),
            )
            if opener.plaintext_size != record.size:
                raise DecryptionError("blob size does not match the record")
            stream = PlaintextStream(reader, opener, self.blobs, record.share_id, record.size)
            await stream.prefetch(everything=record.kind == "text")
        except DecryptionError as error:
            reader.close()
            raise await self._lose(record.share_id, str(error)) from None
        except Exception as error:
            reader.close()
            raise _store_unavailable(record.share_id, error) from None
        except BaseException:
            reader.close()
            raise
        return stream

    async def _lose(self, share_id: str, why: str) -> ShareGone:
        """End a share whose stored data cannot be read, atomically, and say so.

        If something else ended it first (a download that won, a revoke), the answer is
        the reason stored then, like every other request that lost that race.
        """
        if not await self.metadata.claim(share_id, reason="lost"):
            return ShareGone(await self.metadata.gone_reason(share_id))
        log.error("share %s is lost: %s", share_id[:8], why)
        logs.event("lost", share_id, why=why)
        await self._delete_blob(share_id)
        return ShareGone("lost")

    # --- destroying ---

    async def _delete_blob(self, share_id: str) -> None:
        """Delete an ended share's blob; if the store fails now, the janitor removes it later.

        The share has already ended in Redis: a failing delete must not turn the answer
        that says so into an error.
        """
        try:
            await self.blobs.delete(share_id)
        except Exception:
            log.warning("could not delete the blob of %s; the janitor will", share_id[:8])

    # --- helpers ---

    async def _record(self, share_id: str) -> ShareRecord | None:
        """The live record, or None; an unreadable one ends the share as lost."""
        try:
            return await self.metadata.get(share_id)
        except CorruptRecord as error:
            await self._lose(share_id, f"record {error}")
            return None

    async def _live_record(self, share_id: str) -> ShareRecord:
        record = await self._record(share_id)
        if record is None:
            raise ShareGone(await self.metadata.gone_reason(share_id))
        return record

    async def _open_envelope(
        self, token: bytes, record: ShareRecord, password_hash: bytes | None
    ) -> Envelope:
        """The envelope of an unprotected share; one that does not open is lost."""
        kek = crypto.key_encryption_key(token, password_hash)
        try:
            return crypto.open_envelope(
                kek, record.share_id, record.sealed_envelope, _binding(record)
            )
        except DecryptionError:
            raise await self._lose(record.share_id, "envelope does not open") from None


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """A right password: the envelope it opened, the Argon2 output, and the reserved try."""

    envelope: Envelope
    password_hash: bytes
    reservation: CheckReservation


@dataclass(frozen=True, slots=True)
class Unlocked:
    view: ShareView
    proof: str | None  # None for an unprotected share: its download form needs none


def _store_unavailable(share_id: str, error: Exception) -> StorageUnavailable:
    """A blob store that fails to read (not a missing blob): the share stays as it is."""
    log.warning("blob store failed reading %s: %s", share_id[:8], type(error).__name__)
    return StorageUnavailable(
        "The file store cannot be reached right now. Nothing was used up; "
        "please try again in a minute."
    )


def _binding(record: ShareRecord) -> crypto.EnvelopeBinding:
    return crypto.EnvelopeBinding(record.kind, record.size, record.argon2)


def _tries_left(record: ShareRecord, settings: Settings) -> int:
    return max(0, settings.max_password_tries - record.tries)


def _share_view(record: ShareRecord, name: str | None, settings: Settings) -> ShareView:
    return ShareView(
        share_id=record.share_id,
        kind=record.kind,
        size=record.size,
        protected=record.protected,
        expires_at=record.expires_at,
        tries_left=_tries_left(record, settings),
        name=name,
    )


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


class Upload:
    """Plaintext in, sealed 1 MiB batches out to a ``.part`` file.

    The event loop seals each batch inline (about 0.3 ms per MiB) and a worker
    thread writes the previous one meanwhile, so the loop never waits on the
    disk. Sealing in the thread was measured slower on 2 cores: the thread
    must win the GIL back after every 64 KiB chunk while the loop is busy
    parsing; a write gives the GIL up once for the whole batch. Reading the
    body is pull-based (``app.http``), so a slow disk slows the client instead
    of filling memory.
    """

    def __init__(
        self,
        service: ShareService,
        token: bytes,
        share_id: str,
        writer: BlobSink,
        batch_chunks: int = BATCH_CHUNKS,
    ) -> None:
        self._service = service
        self._settings = service.settings
        self._token = token
        self.share_id = share_id
        self._writer = writer
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
        ttl = service.upload_mark_ttl
        self._heartbeat = start_heartbeat(
            lambda: service.metadata.mark_uploading(share_id, ttl),
            ttl,
            f"the upload mark of {share_id[:8]}",
        )

    async def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.size > self._settings.max_upload_bytes:
            raise UploadTooLarge(self._service.too_large_message)
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

    def _stop_heartbeat(self) -> None:
        self._heartbeat.cancel()

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
        self,
        *,
        kind: ShareKind,
        name: str,
        content_type: str,
        password: str,
        expires_in: int | None,
    ) -> CreatedShare:
        """Seal the last batch, store the blob, then write the record that makes it live."""
        service = self._service
        password_bytes = service.validate_password(password)
        lifetime = service.validate_expiry(expires_in)
        await self._seal_batch(final=True)
        await self._settle()
        await self._writer.commit()

        salt = argon2 = password_hash = None
        if password_bytes:
            salt = os.urandom(SALT_BYTES)
            assert self._settings.argon2.within_bounds  # validated with the settings
            argon2 = self._settings.argon2
            password_hash = await service.argon2.hash(argon2, password_bytes, salt)
        kek = crypto.key_encryption_key(self._token, password_hash)
        sealed = crypto.seal_envelope(
            kek,
            self.share_id,
            Envelope(file_key=self._file_key, name=name, content_type=content_type),
            crypto.EnvelopeBinding(kind, self.size, argon2),
        )
        # Names are cut to 255 bytes and types to plain media types before they get here,
        # so a record is always readable back within the bounds.
        assert len(sealed) <= MAX_SEALED_ENVELOPE_BYTES
        now = time.time()
        revoke_token = crypto.new_token()
        record = ShareRecord(
            share_id=self.share_id,
            kind=kind,
            size=self.size,
            created_at=now,
            expires_at=now + lifetime,
            sealed_envelope=sealed,
            salt=salt,
            argon2=argon2,
            revoke_id=crypto.revoke_id_for(revoke_token),
        )
        await service.metadata.create(record)
        metrics.TRANSFERRED.labels("in").inc(self.size)
        logs.event(
            "created",
            self.share_id,
            kind=kind,
            size=self.size,
            protected=record.protected,
            expires_in=lifetime,
        )
        self._done = True
        self._stop_heartbeat()
        return CreatedShare(
            token=crypto.encode_token(self._token),
            revoke_token=crypto.encode_token(revoke_token),
            share_id=self.share_id,
            kind=kind,
            size=self.size,
            protected=record.protected,
            expires_at=record.expires_at,
        )

    async def abort(self) -> None:
        """Remove every trace of an upload that did not finish. Safe to call twice."""
        if self._done:
            return
        self._done = True
        self._stop_heartbeat()
        with contextlib.suppress(Exception):
            await self._settle()  # never close the file under a write in flight
        # The .part, or the .blob if the record was what failed to be written.
        await self._writer.discard()
        try:
            await self._service.metadata.clear_uploading(self.share_id)
        except Exception:
            log.warning(
                "could not clear the upload mark of %s; it expires on its own", self.share_id[:8]
            )


def _parse_token(token_text: str) -> tuple[bytes, str]:
    try:
        token = crypto.decode_token(token_text)
    except InvalidToken:
        raise ShareNotFound(
            "This link is not valid. Check that it was copied completely."
        ) from None
    return token, crypto.share_id_for(token)
