"""Every word the service says when it refuses or fails: titles and sentences, in one place.

Problems (``errors.py``) carry a stable code, the key of their sentence and the values
it shows; the framework's own errors carry a status. This turns them into English for
the pages and the JSON ``error`` field. Translating what the service says about a
problem means giving this module other words, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import Problem, ProblemValue
from ..formatting import human_bytes

# The heading of the error page, by code.
TITLES: dict[str, str] = {
    "malformed_request": "The request could not be read",
    "invalid_input": "Please check the form",
    "password_required": "Password required",
    "wrong_password": "Wrong password",
    "password_check_busy": "One moment",
    "destroyed": "Share destroyed",
    "not_found": "No such link",
    "gone": "This link no longer works",
    "too_large": "File too large",
    "too_slow": "Upload too slow",
    "storage_full": "Not enough space",
    "unavailable": "Temporarily unavailable",
    "storage_unavailable": "Temporarily unavailable",
    "cross_site": "Request refused",
    "unexpected_body": "Unexpected request body",
    "headers_too_large": "Headers too large",
    "uri_too_long": "Address too long",
    "uploads_in_flight": "Too many uploads at once",
    "upload_not_found": "No such upload",
    "upload_ended": "This upload has ended",
    "offset_mismatch": "Out of step",
    "upload_busy": "Upload busy",
    "wrong_content_type": "Wrong content type",
    "resumable_unsupported": "Not available here",
    "tus_version": "Unsupported protocol version",
}

GONE: dict[str, str] = {
    "downloaded": "This was already downloaded (or read, for a message). "
    "One-time links work only once.",
    "expired": "This link has expired and the file was deleted.",
    "destroyed": "This share was destroyed after too many wrong passwords.",
    "revoked": "The sender revoked this share before it was downloaded.",
    "lost": "The stored file could not be read, so the share was deleted. "
    "Ask the sender to share it again.",
    "unknown": "This file was already downloaded, or the link has expired.",
}


def _wrong_password(tries_left: int) -> str:
    tries = "try" if tries_left == 1 else "tries"
    return f"Wrong password. {tries_left} {tries} left before the share is destroyed."


def _protected(kind: str, **_: ProblemValue) -> str:
    what = "message" if kind == "text" else "file"
    return f"This {what} is protected. Enter the password to open it."


# The sentence of each problem, by key; each takes the values its problem carries.
SENTENCES: dict[str, Callable[..., str]] = {
    # the upload form, as the parser reads it
    "not_multipart": lambda: (
        "Send the upload as multipart/form-data (an HTML form with "
        'enctype="multipart/form-data", or curl -F).'
    ),
    "boundary_too_long": lambda: "The multipart boundary is longer than 70 characters.",
    "too_many_parts": lambda limit: f"The form has more than {limit} parts.",
    "part_header_too_long": lambda: "A form part has an over-long header.",
    "part_without_name": lambda: "A form part lacks a Content-Disposition with a name.",
    "not_utf8": lambda: "Form names and values must be UTF-8.",
    "malformed_body": lambda: "The multipart body is malformed.",
    "body_ended_early": lambda: "The multipart body ended before its closing boundary.",
    "file_ended_early": lambda: "The file part ended early.",
    "field_too_long": lambda field, limit_bytes: (
        f"The form field \u201c{field}\u201d is longer than {limit_bytes} bytes."
    ),
    # what the form asks for
    "not_one_file": lambda: "Send exactly one file, in the field named \u201cfile\u201d.",
    "file_and_text": lambda: "Send either a file or a text message, not both.",
    "nothing_to_share": lambda: "Choose a file or write a message to share.",
    "expiry_not_offered": lambda: "Choose one of the offered expiry times.",
    "password_too_long": lambda limit_bytes: (
        f"The password can be at most {limit_bytes} bytes long."
    ),
    "text_too_long": lambda limit_bytes: f"The message can be at most {limit_bytes} bytes long.",
    "too_large": lambda limit_bytes: f"Files can be at most {human_bytes(limit_bytes)}.",
    "too_slow": lambda min_rate_bytes: (
        f"The upload arrived too slowly (under {human_bytes(min_rate_bytes)}/s on average), "
        "so it was cancelled and nothing was kept. Please try again on a faster connection."
    ),
    "storage_full": lambda: (
        "The server is low on disk space and cannot take this file now. "
        "Try again later or send a smaller file."
    ),
    # links and passwords
    "invalid_link": lambda: "This link is not valid. Check that it was copied completely.",
    "invalid_revoke_link": lambda: "This revoke link is not valid.",
    "gone": lambda reason: GONE[reason],
    "password_required": _protected,
    "proof_expired": lambda **_: "The password check has expired. Enter the password again.",
    "wrong_password": _wrong_password,
    "destroyed": lambda: (
        "Wrong password. That was the last try: the share has been "
        "destroyed and can no longer be opened."
    ),
    "password_check_busy": lambda: (
        "Another attempt at this password is being checked right now. Wait a second and try again."
    ),
    # the service itself
    "database_unreachable": lambda: (
        "The service cannot reach its database right now. Nothing "
        "was changed; please try again in a minute."
    ),
    "storage_unavailable": lambda: (
        "The file store cannot be reached right now. Nothing was used up; "
        "please try again in a minute."
    ),
    # resumable uploads (web/tus.py)
    "upload_not_found": lambda: "There is no upload at this address.",
    "upload_ended": lambda: (
        "This upload expired or was cancelled before it was complete; nothing of it was kept."
    ),
    "offset_mismatch": lambda offset: (
        f"The upload is at byte {offset}; send the rest from there (ask with HEAD)."
    ),
    "upload_length_missing": lambda: "A new upload must say its size in Upload-Length.",
    "upload_length_invalid": lambda: "Upload-Length and Upload-Offset must be whole numbers.",
    "upload_metadata_invalid": lambda: (
        "Upload-Metadata must be comma-separated keys, each with an optional base64 value."
    ),
    "upload_beyond_length": lambda: "This would go past the upload's declared Upload-Length.",
    "upload_busy": lambda: "Another request is adding to this upload right now. Try again.",
    "wrong_content_type": lambda: (
        "Upload data must be sent as Content-Type: application/offset+octet-stream."
    ),
    "method_override": lambda: "X-HTTP-Method-Override may be PATCH or DELETE here.",
    "upload_incomplete": lambda: (
        "This upload is not complete yet; its links come after the last byte."
    ),
    "tus_version": lambda: "This server speaks tus 1.0.0 only (Tus-Resumable: 1.0.0).",
    "resumable_unsupported": lambda: (
        "Resumable uploads need the local disk store; this server keeps files in an "
        "object store. Use the upload form instead."
    ),
    # the gateway (web/guards.py)
    "cross_site": lambda: (
        "This form was sent from another site, so it was refused. "
        "Open the page on this site and try again."
    ),
    "form_expired": lambda: "This form has expired. Reload the page and try again.",
    "admin_form_refused": lambda: (
        "This form has expired or did not come from this site. Reload the page and try again."
    ),
    "unexpected_body": lambda: "This address does not take a request body.",
    "headers_too_large": lambda limit_bytes: (
        f"Request headers here are at most {limit_bytes} bytes."
    ),
    "uri_too_long": lambda limit_bytes: f"Addresses here are at most {limit_bytes} bytes long.",
    "uploads_in_flight": lambda per_client: (
        f"{per_client} uploads from your address are already in progress. "
        "Wait until one of them has finished, then send this one again."
    ),
}


def title(problem: Problem) -> str:
    return TITLES[problem.code]


def sentence(key: str, params: Mapping[str, ProblemValue]) -> str:
    return SENTENCES[key](**params)


def message(problem: Problem) -> str:
    return sentence(problem.key, problem.params)


def recorded_sentence(key: str, params: Mapping[str, ProblemValue]) -> str | None:
    """The sentence of a problem read back from Redis (an upload's progress); None for one
    this version does not know, as another version may have written it."""
    try:
        return sentence(key, params)
    except (KeyError, TypeError):
        return None


# --- what is not a Problem: the framework's errors, rate limits, the last resort ---

# Unknown URL, wrong method, ...: the status decides.
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request could not be understood."),
    404: ("Page not found", "There is nothing at this address."),
    405: ("Method not allowed", "This address does not accept that kind of request."),
    408: ("Too slow", "The upload stalled for too long and was cancelled. Please try again."),
    413: ("Too large", "The request is larger than this server accepts."),
    414: ("Address too long", "The address is longer than this server accepts."),
    431: ("Headers too large", "The request headers are larger than this server accepts."),
}

RATE_LIMITED_TITLE = "Too many requests"


def rate_limited_message(retry_after: object) -> str:
    return f"You are going a bit fast. Please wait {retry_after} s and try again."


UNEXPECTED_TITLE = "Something went wrong"
UNEXPECTED_MESSAGE = "The server hit an unexpected problem. Nothing was shared; please try again."

# The plain-text answer to a command-line client on a download link.
COMMAND_LINE_REFUSED = (
    "This one-time link must be opened in a web browser.\n"
    "Command-line downloads are blocked on purpose: a preview, a script or a scanner\n"
    "could otherwise use up the link before the person it was meant for.\n"
    "Open the link in a browser to see the file and download it there.\n"
)
