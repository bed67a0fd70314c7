"""Structured logs: one JSON object per line, one line per request and per lifecycle event.

Nothing secret is ever logged. No file name, message or password is passed to a
log call anywhere, and lifecycle events name shares by the first 8 characters of
the derived share id (as the admin panel does). Link tokens and upload ids travel
in request paths, and paths turn up in more places than the request log (Quart's
fallback "Exception on request GET /d/...", exception messages, tracebacks), so
every record is redacted by one filter on the one handler before any formatter
sees it: the secret segment of every path in ``SECRET_PATH_PREFIXES`` is replaced
by "…" wherever it appears, and, inside a request, so is that request's own secret
wherever it appears on its own.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

# Every path that carries a secret in the segment after its prefix. A new route
# with a secret in its path adds one line here; nothing else needs to change.
SECRET_PATH_PREFIXES: tuple[str, ...] = (
    "/d/",  # share links: /d/<token>, /d/<token>/unlock, /d/<token>/status
    "/r/",  # revoke links: /r/<revoke token>
    "/upload/progress/",  # upload progress: /upload/progress/<upload id>
    "/tus/",  # resumable uploads: /tus/<upload secret>
)
REDACTED = "…"


def _as_routed(prefix: str) -> str:
    """A prefix as the router may still see it: each slash may be doubled and followed
    by dot segments (``/d//<token>`` is redirected, ``/d/./<token>`` is a 404 - and
    both are logged)."""
    return r"/+(?:\.{1,2}/+)*".join(re.escape(part) for part in prefix.split("/"))


# A bare request path: the whole segment, as the route captures it.
_SECRET_IN_PATH = re.compile(
    "^(?P<prefix>" + "|".join(_as_routed(prefix) for prefix in SECRET_PATH_PREFIXES) + ")"
    r"(?P<secret>[^/]+)"
)
# Whatever its surroundings: a run with the exact shape of our link tokens (32 random
# bytes as 43 base64url characters) is redacted wherever it stands alone.
_TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_=-])")


def _right_after(prefix: str) -> str:
    """Lookbehinds for the prefix, as is and percent-encoded (a URL in a query string)."""
    plain = re.escape(prefix)
    return f"(?<={plain})|(?<={plain.replace('/', '%2[Ff]')})"


# A path anywhere in free text ("GET /d/<token>?x HTTP/1.1", a URL, a repr in a
# traceback): every segment right after a prefix, up to where a path, query,
# quoted string or sentence would go on. Lookbehinds, so that overlapping paths
# (/r/d/<token>) are all caught. Ending a segment too late only redacts more;
# tokens and ids never contain any of these characters.
_SECRET_IN_TEXT = re.compile(
    "(?:"
    + "|".join(_right_after(prefix) for prefix in SECRET_PATH_PREFIXES)
    + r")[^/?#&%\s\"'<>\\,;:()\[\]{}]+"
)
# A request's own secret is also replaced where it appears without its path (an
# exception that quotes it, say); shorter segments are no token or id of ours
# (tokens have 43 characters, upload ids 22), and replacing them would mangle lines.
_SHORTEST_SECRET = 16
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

events = logging.getLogger("onetimeshare.events")
requests_log = logging.getLogger("onetimeshare.requests")


def redact_path(path: str) -> str:
    """'/d/<token>/status' -> '/d/…/status'; nothing else in a path is secret."""
    return _TOKEN_SHAPE.sub(REDACTED, _SECRET_IN_PATH.sub(rf"\g<prefix>{REDACTED}", path))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Every secret path segment in ``text`` (and every one of ``secrets``) -> '…'."""
    text = _TOKEN_SHAPE.sub(REDACTED, _SECRET_IN_TEXT.sub(REDACTED, text))
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def secrets_in_path(path: str) -> tuple[str, ...]:
    """The secret a request path carries, if any, long enough to be redacted anywhere."""
    match = _SECRET_IN_PATH.match(path)
    if match is None or len(match["secret"]) < _SHORTEST_SECRET:
        return ()
    return (match["secret"],)


def _no_request() -> tuple[str, ...]:
    return ()


# The secrets of the request being served, if any; the web layer installs the function
# that knows (web/request_log.py), so this module needs no web framework.
_current_secrets: Callable[[], tuple[str, ...]] = _no_request


def use_request_secrets(current: Callable[[], tuple[str, ...]]) -> None:
    global _current_secrets
    _current_secrets = current


class RedactSecrets(logging.Filter):
    """Redacts a record in place: its message, exception and stack text, and extra fields.

    On the handler, not on a logger, so that it sees every record that reaches the
    output, from any logger (ours, Quart's, the server's).
    """

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _current_secrets()
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: keep the template
            message = str(record.msg)
        record.msg, record.args = redact_text(message, secrets), None
        if record.exc_info and not record.exc_text:
            # Formatted once here, redacted, and used as-is by every formatter.
            record.exc_text = self._exceptions.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, secrets)
        for key, value in list(vars(record).items()):
            if key in _STANDARD_ATTRIBUTES or key.startswith("_"):
                continue
            if isinstance(value, str):
                setattr(record, key, redact_text(value, secrets))
            elif not isinstance(value, int | float | bool | None):
                setattr(record, key, redact_text(str(value), secrets))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(record.created))}."
            f"{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            {
                key: value
                for key, value in vars(record).items()
                if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
            }
        )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["error"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def configure(json_format: bool, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_format
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def event(name: str, share_id: str = "", **facts: object) -> None:
    """A lifecycle event (created, downloaded, destroyed, revoked, expired, ...)."""
    events.info(name, extra={"event": name, "share": share_id[:8], **facts})
