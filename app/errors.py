"""Failures a person or client can act on: what went wrong, as a stable code and its values.

The domain (the share lifecycle, the blob stores) raises these, and so do the web
layer's gateway checks and form parser. Each names its HTTP status and ``code`` (in
every JSON answer, for programs), the ``key`` of the sentence that says it, and the
values that sentence shows. The words live in one place, ``web/messages.py``, so the
pages can be translated without touching the code that refuses. No Quart here, so the
domain can raise them; the values never hold tokens, passwords, keys or file names.
"""

from __future__ import annotations

from typing import ClassVar, Literal

GoneReason = Literal["downloaded", "expired", "destroyed", "revoked", "lost", "unknown"]
ProblemValue = str | int


class Problem(Exception):
    """A refusal the client is told about; never raised itself, only its kinds below."""

    status: ClassVar[int]
    code: ClassVar[str]
    # Seconds after which trying again makes sense (a Retry-After header), if any.
    retry_after: ClassVar[int | None] = None

    def __init__(self, key: str = "", **params: ProblemValue) -> None:
        """``key`` picks the sentence when a kind has several; by default it is the code."""
        self.key = key or self.code
        self.params = params
        super().__init__(self.key)


class MalformedRequest(Problem):
    status = 400
    code = "malformed_request"


class InvalidInput(Problem):
    status = 422
    code = "invalid_input"


class PasswordRequired(Problem):
    status = 401
    code = "password_required"

    def __init__(self, key: str = "", *, tries_left: int, **params: ProblemValue) -> None:
        super().__init__(key, tries_left=tries_left, **params)
        self.tries_left = tries_left


class WrongPassword(PasswordRequired):
    code = "wrong_password"

    def __init__(self, *, tries_left: int) -> None:
        super().__init__(tries_left=tries_left)


class PasswordCheckBusy(Problem):
    """Other guesses at this share's password are being checked and would use up its tries:
    this one is not evaluated, so concurrency can never buy more than the allowed tries."""

    status = 429
    code = "password_check_busy"
    retry_after = 1


class ShareDestroyed(Problem):
    """That wrong password was the last try."""

    status = 403
    code = "destroyed"


class ShareNotFound(Problem):
    status = 404
    code = "not_found"


class ShareGone(Problem):
    status = 410
    code = "gone"

    def __init__(self, *, reason: GoneReason) -> None:
        super().__init__(reason=reason)
        self.reason = reason


class UploadTooLarge(Problem):
    status = 413
    code = "too_large"

    def __init__(self, *, limit_bytes: int) -> None:
        super().__init__(limit_bytes=limit_bytes)


class UploadTooSlow(Problem):
    """The body averaged less than OTS_MIN_UPLOAD_RATE after its grace period."""

    status = 408
    code = "too_slow"

    def __init__(self, *, min_rate_bytes: int) -> None:
        super().__init__(min_rate_bytes=min_rate_bytes)


class StorageFull(Problem):
    status = 507
    code = "storage_full"


class ServiceUnavailable(Problem):
    status = 503
    code = "unavailable"
    retry_after = 30


class StorageUnavailable(ServiceUnavailable):
    """The blob store failed to read (an outage, not a missing blob): nothing was consumed."""

    code = "storage_unavailable"


# --- refused at the gateway, before a route reads anything (web/guards.py) ---


class CrossSiteRequest(Problem):
    status = 403
    code = "cross_site"


class BodyNotAllowed(Problem):
    status = 400
    code = "unexpected_body"


class HeadersTooLarge(Problem):
    status = 431
    code = "headers_too_large"

    def __init__(self, *, limit_bytes: int) -> None:
        super().__init__(limit_bytes=limit_bytes)


class AddressTooLong(Problem):
    status = 414
    code = "uri_too_long"

    def __init__(self, *, limit_bytes: int) -> None:
        super().__init__(limit_bytes=limit_bytes)


class UploadsInFlight(Problem):
    status = 429
    code = "uploads_in_flight"
    # Nothing says when another upload ends; a script may look again soon.
    retry_after = 5

    def __init__(self, *, per_client: int) -> None:
        super().__init__(per_client=per_client)


# --- resumable uploads (the tus protocol, domain/resumable.py) ---


class UploadNotFound(Problem):
    """No resumable upload at that address: never made, or finished and its window over."""

    status = 404
    code = "upload_not_found"


class UploadEnded(Problem):
    """The resumable upload expired or was terminated."""

    status = 410
    code = "upload_ended"


class OffsetMismatch(Problem):
    """A PATCH sent from another offset than the upload is at (a retry that came late)."""

    status = 409
    code = "offset_mismatch"

    def __init__(self, *, offset: int) -> None:
        super().__init__(offset=offset)
        self.offset = offset


class UploadBusy(Problem):
    """Another request is appending to this upload right now (as tusd answers: 423)."""

    status = 423
    code = "upload_busy"
    retry_after = 1


class WrongContentType(Problem):
    status = 415
    code = "wrong_content_type"


class ResumableUnsupported(Problem):
    """The configured blob store cannot keep an upload open between requests."""

    status = 501
    code = "resumable_unsupported"


class TusVersionUnsupported(Problem):
    status = 412
    code = "tus_version"
