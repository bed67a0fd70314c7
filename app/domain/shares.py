"""The share lifecycle: create from an upload, inspect without consuming, claim once, destroy.

This module ties crypto, blob storage and Redis metadata together; it knows
nothing about HTTP. Routes parse the request, call in here, and render. The upload
pipeline is in ``uploads.py``, the decrypted download stream in ``plaintext.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import redis.exceptions

from .. import logs, metrics
from ..config import Settings
from ..errors import (
    GoneReason,
    InvalidInput,
    PasswordCheckBusy,
    PasswordRequired,
    Problem,
    ShareDestroyed,
    ShareGone,
    ShareNotFound,
    StorageUnavailable,
    UploadTooLarge,
    WrongPassword,
)
from . import crypto
from .crypto import DecryptionError, Envelope, InvalidToken
from .heartbeat import start_heartbeat
from .metadata import (
    CheckReservation,
    CorruptRecord,
    MetadataStore,
    ShareKind,
    ShareRecord,
)
from .passwords import Argon2Pool
from .plaintext import Download, PlaintextStream
from .progress import ProgressRecorder, valid_upload_id
from .storage import BlobStore
from .uploads import (
    CreatedShare,
    Expiry,
    IncomingFile,
    Password,
    ProgressId,
    ShareDraft,
    ShareOptions,
    StrayFile,
    Text,
    Upload,
    UploadPart,
    UploadSource,
)

log = logging.getLogger(__name__)

BATCH_CHUNKS = 16  # 16 x 64 KiB: crypto and disk work in 1 MiB batches
# Room in an upload's body for the form around the file (or the message).
FORM_OVERHEAD_BYTES = 64 * 1024
# A reserved password check lapses this long after its last renewal, so a worker that
# dies mid-Argon2 gives its try back; a check that is still running renews it on a
# heartbeat, however long its hash takes.
CHECK_LEASE_SECONDS = 30.0
UNLOCK_PURPOSE = "unlock"
# How long the proof of a checked password may wait for the download form it is in.
UNLOCK_PROOF_SECONDS = 300
# A text share is stored as a file of this name and type.
TEXT_NAME = "message.txt"
TEXT_TYPE = "text/plain; charset=utf-8"


def batch_chunks_for(size: int | None) -> int:
    """Chunks per batch: 1 MiB for big transfers, less for small ones, whose buffers
    would otherwise be mostly empty (32 concurrent 4 KiB shares took 420 MiB)."""
    if size is None:
        return BATCH_CHUNKS
    return max(1, min(BATCH_CHUNKS, -(-size // crypto.DEFAULT_CHUNK_SIZE)))


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

    async def create(self, source: UploadSource, draft: ShareDraft) -> CreatedShare:
        """A new share from an upload's parts, read as they arrive; nothing stays behind
        if anything fails.

        Small fields are checked as soon as they arrive, so a bad form fails before its
        file is read. A refused one does not stop the reading of the other small fields
        (``draft`` keeps what was accepted, so the form can be shown again as it was
        filled in), but no file is read after it. With a progress id, the phases
        (receiving, securing, stored or failed) are recorded for the uploader's page.
        """
        upload: Upload | None = None
        file: IncomingFile | None = None
        progress: ProgressRecorder | None = None
        problem: InvalidInput | None = None
        try:
            async with contextlib.aclosing(source.parts()) as parts:
                async for part in parts:
                    if isinstance(part, IncomingFile | StrayFile):
                        if problem is not None:
                            raise problem
                        if isinstance(part, StrayFile) or upload is not None:
                            raise InvalidInput("not_one_file")
                        if not part.name:
                            continue  # a file input left empty; a text may carry the share
                        upload = await self.begin_upload(source.declared_bytes)
                        file = part
                        async for data in part.chunks:
                            await upload.write(data)
                            if progress is not None:
                                await progress.received(upload.size)
                    elif isinstance(part, ProgressId):
                        if valid_upload_id(part.value):
                            progress = ProgressRecorder(
                                self.metadata, part.value, source.declared_bytes
                            )
                            await progress.phase("receiving", received=0)
                    else:
                        try:
                            self._take(part, draft)
                        except InvalidInput as error:
                            problem = problem or error
            if problem is not None:
                raise problem
            if progress is not None:
                await progress.phase("securing", received=source.received_bytes)
            if upload is not None and draft.text:
                raise InvalidInput("file_and_text")
            options = self.options(draft)
            if upload is not None and file is not None:
                created = await upload.finish(
                    kind="file", name=file.name, content_type=file.content_type, options=options
                )
            elif draft.text:
                created = await self.create_text(draft.text, options)
            else:
                raise InvalidInput("nothing_to_share")
            if progress is not None:
                await progress.phase("stored", received=source.received_bytes)
            return created
        except BaseException as error:
            if upload is not None:
                # Shielded: a cancelled request (client gone, server stopping) must
                # still remove its partial file and upload mark.
                await asyncio.shield(upload.abort())
            if progress is not None and isinstance(error, Problem):
                await asyncio.shield(progress.failed(error))
            raise

    async def create_text(self, text: str, options: ShareOptions) -> CreatedShare:
        """A text share, stored as a small file; limited by the text limit alone."""
        data = text.encode("utf-8")
        limit = self.settings.max_text_bytes
        if len(data) > limit:
            raise InvalidInput("text_too_long", limit_bytes=limit)
        upload = await self.begin_upload(len(data), limit_bytes=limit)
        try:
            await upload.write(data)
            return await upload.finish(
                kind="text", name=TEXT_NAME, content_type=TEXT_TYPE, options=options
            )
        except BaseException:
            await asyncio.shield(upload.abort())
            raise

    async def begin_upload(
        self, declared_bytes: int | None = None, *, limit_bytes: int | None = None
    ) -> Upload:
        """Start a share; the caller streams plaintext into it, then finishes or aborts
        (``create`` and ``create_text`` do). ``limit_bytes`` caps the plaintext: by
        default, the file limit."""
        if declared_bytes is not None and declared_bytes > self.max_request_bytes:
            raise self.too_large()
        self.blobs.check_room(declared_bytes or 0)
        token = crypto.new_token()
        share_id = crypto.share_id_for(token)
        mark_seconds = self.settings.upload_mark_seconds
        await self.metadata.mark_uploading(share_id, mark_seconds)
        try:
            writer = await self.blobs.start(share_id, declared_bytes)
        except BaseException:
            await self.metadata.clear_uploading(share_id)
            raise
        return Upload(
            token,
            share_id,
            writer,
            metadata=self.metadata,
            argon2=self.argon2,
            argon2_params=self.settings.argon2,
            mark_seconds=mark_seconds,
            limit_bytes=self.settings.max_upload_bytes if limit_bytes is None else limit_bytes,
            batch_chunks=batch_chunks_for(declared_bytes),
        )

    @property
    def max_request_bytes(self) -> int:
        """Largest upload body accepted: the file or the message, plus the form around it."""
        largest = max(self.settings.max_upload_bytes, self.settings.max_text_bytes)
        return largest + FORM_OVERHEAD_BYTES

    def too_large(self) -> UploadTooLarge:
        """The refusal of an upload over the limits (of a body too large for any share)."""
        return UploadTooLarge(limit_bytes=self.settings.max_upload_bytes)

    def options(self, draft: ShareDraft) -> ShareOptions:
        """The draft's choices, checked, with the default expiry if none was chosen."""
        lifetime = self.settings.default_expiry
        if draft.expires_in is not None:
            lifetime = self._offered_expiry(draft.expires_in)
        return ShareOptions(password=self.validate_password(draft.password), lifetime=lifetime)

    def _take(self, part: UploadPart, draft: ShareDraft) -> None:
        """Check a small field as soon as it arrives; keep it in the draft if it is good."""
        if isinstance(part, Password):
            self.validate_password(part.value)
            draft.password = part.value
        elif isinstance(part, Expiry):
            try:
                seconds = int(part.value)
            except ValueError:
                raise InvalidInput("expiry_not_offered") from None
            draft.expires_in = self._offered_expiry(seconds)
        elif isinstance(part, Text):
            draft.text = part.value

    def _offered_expiry(self, seconds: int) -> int:
        if seconds not in self.settings.expiry_choices:
            raise InvalidInput("expiry_not_offered")
        return seconds

    def validate_password(self, password: str) -> bytes:
        encoded = password.encode("utf-8")
        if len(encoded) > self.settings.max_password_bytes:
            raise InvalidInput("password_too_long", limit_bytes=self.settings.max_password_bytes)
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
            raise ShareGone(reason=await self.metadata.gone_reason(share_id))
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
            raise ShareGone(reason=await self.metadata.gone_reason(share_id))
        logs.event("downloaded", share_id, kind=record.kind, size=record.size)
        metrics.TRANSFERRED.labels("out").inc(record.size)
        return Download(
            kind=record.kind,
            name=envelope.name,
            content_type=envelope.content_type,
            size=record.size,
            chunks=stream,
        )

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
            raise PasswordRequired(kind=record.kind, tries_left=_tries_left(record, self.settings))
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
                raise ShareGone(reason=await self.metadata.gone_reason(record.share_id))
            if reservation.outcome == "busy":
                raise PasswordCheckBusy()
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

    async def _failed_attempt(self, record: ShareRecord, reservation: CheckReservation) -> Problem:
        """Count a wrong password and say what it cost."""
        left = await self.metadata.settle_wrong(reservation, self.settings.max_password_tries)
        logs.event("wrong_password", record.share_id, tries_left=max(0, left))
        if left < 0:
            return ShareGone(reason=await self.metadata.gone_reason(record.share_id))
        if left == 0:
            logs.event("destroyed", record.share_id, reason="too many wrong passwords")
            await self._delete_blob(record.share_id)
            return ShareDestroyed()
        return WrongPassword(tries_left=left)

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
        expired = PasswordRequired("proof_expired", tries_left=_tries_left(record, self.settings))
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
            raise ShareNotFound("invalid_revoke_link") from None
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
            return ShareGone(reason=await self.metadata.gone_reason(share_id))
        log.error("share %s is lost: %s", share_id[:8], why)
        logs.event("lost", share_id, why=why)
        await self._delete_blob(share_id)
        return ShareGone(reason="lost")

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
        try:
            record, reason = await self.metadata.get_or_gone(share_id)
        except CorruptRecord as error:
            raise await self._lose(share_id, f"record {error}") from None
        if record is None:
            raise ShareGone(reason=reason)
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
    return StorageUnavailable()


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


def _parse_token(token_text: str) -> tuple[bytes, str]:
    try:
        token = crypto.decode_token(token_text)
    except InvalidToken:
        raise ShareNotFound("invalid_link") from None
    return token, crypto.share_id_for(token)
