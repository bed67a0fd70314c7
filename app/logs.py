"""Structured logs: one JSON object per line, one line per request and per lifecycle event.

Nothing secret is ever logged: request paths have their tokens replaced before
they are written, lifecycle events name shares by the first 8 characters of the
derived share id (as the admin panel does), and no file name, message or
password is passed to a log call anywhere.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from quart import Quart, Response, g, request

from . import metrics

# Paths that carry a secret in their last segment: share links, revoke links,
# upload progress ids.
_SECRET_PATHS = re.compile(r"^/(d|r)/[^/]+|^/upload/progress/[^/]+")
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

events = logging.getLogger("onetimeshare.events")
requests_log = logging.getLogger("onetimeshare.requests")


def redact_path(path: str) -> str:
    """'/d/<token>/status' -> '/d/…/status'; nothing else in a path is secret."""
    return _SECRET_PATHS.sub(lambda match: match.group(0).rsplit("/", 1)[0] + "/…", path)


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
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(json_format: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_format
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def event(name: str, share_id: str = "", **facts: object) -> None:
    """A lifecycle event (created, downloaded, destroyed, revoked, expired, ...)."""
    events.info(name, extra={"event": name, "share": share_id[:8], **facts})


def install(app: Quart) -> None:
    @app.before_request
    async def start_clock() -> None:
        g.started = time.perf_counter()

    @app.after_request
    async def log_request(response: Response) -> Response:
        started = g.get("started")
        elapsed = time.perf_counter() - started if started else 0.0
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        metrics.LATENCY.labels(route).observe(elapsed)
        requests_log.info(
            "request",
            extra={
                "method": request.method,
                "path": redact_path(request.path),
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
                "client": request.remote_addr,
            },
        )
        return response
