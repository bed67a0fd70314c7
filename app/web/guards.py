"""Checks every request passes before it reaches a route (and before it counts against a
rate limit): command-line clients on download links, cross-site form posts, bodies where
none belong, over-long addresses. And the cap on upload requests in flight per client,
which the upload routes take before reading a body. A route that reads a body says so
with ``@takes_body``. The refusals are Problems (``errors.py``), their words in
``messages.py``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from quart import Quart, Response, request

from ..config import Settings
from ..errors import (
    AddressTooLong,
    BodyNotAllowed,
    CrossSiteRequest,
    HeadersTooLarge,
    UploadsInFlight,
)
from .clients import client_key
from .errors import count_quietly
from .extension import services
from .messages import COMMAND_LINE_REFUSED

F = TypeVar("F", bound=Callable[..., Any])

# Set on the view functions that read a request body; every other route refuses one.
TAKES_BODY_ATTRIBUTE = "_ots_takes_body"
CLI_ENDPOINTS_PREFIX = "download."
MAX_PATH_BYTES = 2048
# Hypercorn refuses a request head over 16 KiB only while it is still arriving in
# pieces; one that arrives whole is passed on, so the app checks the total too.
MAX_HEADER_BYTES = 16 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def takes_body(view: F) -> F:
    """Declare that a route reads a request body (a form or an upload); the gateway
    refuses a body on every route that does not say so."""
    setattr(view, TAKES_BODY_ATTRIBUTE, True)
    return view


@contextlib.asynccontextmanager
async def upload_request_in_flight() -> AsyncIterator[None]:
    """Hold one of the client's upload request slots for the block, or refuse at once with 429.

    Enter it before reading the body, so a refused request costs no buffers and no
    file. Off with the rate limits (OTS_RATE_LIMITS=false), like every per-client limit.
    """
    current = services()
    if not current.settings.rate_limits_enabled:
        yield
        return
    slots = current.upload_slots
    async with slots.hold(client_key()) as held:
        if not held:
            await count_quietly("rate_limited", "rate_limited")
            raise UploadsInFlight(per_client=slots.per_client)
        yield


def install(app: Quart, settings: Settings) -> None:
    """Register the checks; call before the rate limiter so refused requests never count."""
    agents = tuple(agent.lower() for agent in settings.cli_agents)

    @app.before_request
    async def refuse_command_line_clients() -> Response | None:
        # A blocked request must not consume, count or reveal anything, so this runs
        # before routing does any work and before the rate limiter records a hit.
        if not settings.block_cli_agents or not (request.endpoint or "").startswith(
            CLI_ENDPOINTS_PREFIX
        ):
            return None
        user_agent = request.headers.get("User-Agent", "").strip().lower()
        if user_agent and not any(agent in user_agent for agent in agents):
            return None
        await count_quietly("cli_blocked", "blocked")
        response = Response(
            COMMAND_LINE_REFUSED, status=406, content_type="text/plain; charset=utf-8"
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.before_request
    async def check_request_shape() -> None:
        header_bytes = sum(len(name) + len(value) for name, value in request.scope["headers"])
        if header_bytes > MAX_HEADER_BYTES:
            raise HeadersTooLarge(limit_bytes=MAX_HEADER_BYTES)
        if len(request.scope.get("raw_path", b"")) > MAX_PATH_BYTES:
            raise AddressTooLong(limit_bytes=MAX_PATH_BYTES)
        if not _takes_body(app) and _carries_body():
            raise BodyNotAllowed()
        if request.method not in SAFE_METHODS and not _same_origin(settings):
            raise CrossSiteRequest()


def _takes_body(app: Quart) -> bool:
    view = app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, TAKES_BODY_ATTRIBUTE, False))


def _carries_body() -> bool:
    if request.content_length:
        return True
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _same_origin(settings: Settings) -> bool:
    """Browsers say where a form came from; clients that say nothing (scripts) pass.

    Fetch metadata decides when present (every current browser sends it). Otherwise
    Origin, compared with the public URL when set, else with the Host the browser
    addressed (a proxy may have changed the scheme). Our own pages send
    ``Referrer-Policy: no-referrer``, under which browsers post ``Origin: null``
    even from this site, so "null" alone proves nothing either way.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in {"same-origin", "none"}
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    if settings.public_url:
        expected = urlsplit(settings.public_url)
        actual = urlsplit(origin)
        return (actual.scheme, actual.netloc) == (expected.scheme, expected.netloc)
    return urlsplit(origin).netloc == request.host
