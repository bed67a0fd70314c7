"""Failures a person or client can act on, each with its HTTP status and a plain message.

The share service raises these; the web layer renders them as HTML or JSON.
Messages never contain tokens, passwords, keys or file names.
"""

from __future__ import annotations

from typing import ClassVar, Literal

GoneReason = Literal["downloaded", "expired", "destroyed", "revoked", "lost", "unknown"]

GONE_MESSAGES: dict[str, str] = {
    "downloaded": "This was already downloaded (or read, for a message). "
    "One-time links work only once.",
    "expired": "This link has expired and the file was deleted.",
    "destroyed": "This share was destroyed after too many wrong passwords.",
    "revoked": "The sender revoked this share before it was downloaded.",
    "lost": "The stored file could not be read, so the share was deleted. "
    "Ask the sender to share it again.",
    "unknown": "This file was already downloaded, or the link has expired.",
}


class ShareError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Something is wrong with this request"
    # Seconds after which trying again makes sense (a Retry-After header), if any.
    retry_after: ClassVar[int | None] = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedRequest(ShareError):
    status = 400
    code = "malformed_request"
    title = "The request could not be read"


class InvalidInput(ShareError):
    status = 422
    code = "invalid_input"
    title = "Please check the form"


class PasswordRequired(ShareError):
    status = 401
    code = "password_required"
    title = "Password required"

    def __init__(self, message: str, tries_left: int) -> None:
        super().__init__(message)
        self.tries_left = tries_left


class WrongPassword(PasswordRequired):
    code = "wrong_password"
    title = "Wrong password"


class PasswordCheckBusy(ShareError):
    """Other guesses at this share's password are being checked and would use up its tries:
    this one is not evaluated, so concurrency can never buy more than the allowed tries."""

    status = 429
    code = "password_check_busy"
    title = "One moment"
    retry_after = 1


class ShareDestroyed(ShareError):
    status = 403
    code = "destroyed"
    title = "Share destroyed"


class ShareNotFound(ShareError):
    status = 404
    code = "not_found"
    title = "No such link"


class ShareGone(ShareError):
    status = 410
    code = "gone"
    title = "This link no longer works"

    def __init__(self, reason: GoneReason) -> None:
        super().__init__(GONE_MESSAGES[reason])
        self.reason = reason


class UploadTooLarge(ShareError):
    status = 413
    code = "too_large"
    title = "File too large"


class UploadTooSlow(ShareError):
    """The body averaged less than OTS_MIN_UPLOAD_RATE after its grace period."""

    status = 408
    code = "too_slow"
    title = "Upload too slow"


class StorageFull(ShareError):
    status = 507
    code = "storage_full"
    title = "Not enough space"


class ServiceUnavailable(ShareError):
    status = 503
    code = "unavailable"
    title = "Temporarily unavailable"
    retry_after = 30


class StorageUnavailable(ServiceUnavailable):
    """The blob store failed to read (an outage, not a missing blob): nothing was consumed."""

    code = "storage_unavailable"
