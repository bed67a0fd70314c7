"""Checks every request passes before it reaches a route (and before it counts against a
rate limit): command-line clients on download links, cross-site form posts, bodies where
none belong, over-long addresses. And the cap on upload requests in flight per client,
which the upload routes take before reading a body."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from quart import Quart, Response, request

from ..config import Settings
from ..errors import ShareError
from .clients import client_key
from .errors import count_quietly
from .extension import services

# Routes that read a request body; every other route refuses one.
BODY_ENDPOINTS = frozenset(
    {
        "upload.create_share",
        "download.download",
        "download.unlock",
        "auth.login",
        "admin.revoke_share",
        "admin.logout_everywhere",
        "auth.logout",
    }
)
CLI_ENDPOINTS_PREFIX = "download."
MAX_PATH_BYTES = 2048
# Hypercorn refuses a request head over 16 KiB only while it is still arriving in
# pieces; one that arrives whole is passed on, so the app checks the total too.
MAX_HEADER_BYTES = 16 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CLI_MESSAGE = (
    "This one-time link must be opened in a web browser.\n"
    "Command-line downloads are blocked on purpose: a preview, a script or a scanner\n"
    "could otherwise use up the link before the person it was meant for.\n"
    "Open the link in a browser to see the file and download it there.\n"
)


class CrossSiteRequest(ShareError):
    status = 403
    code = "cross_site"
    title = "Request refused"


class BodyNotAllowed(ShareError):
    status = 400
    code = "unexpected_body"
    title = "Unexpected request body"


class HeadersTooLarge(ShareError):
    status = 431
    code = "headers_too_large"
    title = "Headers too large"


class AddressTooLong(ShareError):
    status = 414
    code = "uri_too_long"
    title = "Address too long"


class UploadsInFlight(ShareError):
    status = 429
    code = "uploads_in_flight"
    title = "Too many uploads at once"
    # Nothing says when another upload ends; a script may look again soon.
    retry_after = 5


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
            raise UploadsInFlight(
                f"{slots.per_client} uploads from your address are already in progress. "
                "Wait until one of them has finished, then send this one again."
            )
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
        response = Response(CLI_MESSAGE, status=406, content_type="text/plain; charset=utf-8")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.before_request
    async def check_request_shape() -> None:
        header_bytes = sum(len(name) + len(value) for name, value in request.scope["headers"])
        if header_bytes > MAX_HEADER_BYTES:
            raise HeadersTooLarge(f"Request headers here are at most {MAX_HEADER_BYTES} bytes.")
        if len(request.scope.get("raw_path", b"")) > MAX_PATH_BYTES:
            raise AddressTooLong(f"Addresses here are at most {MAX_PATH_BYTES} bytes long.")
        if request.endpoint not in BODY_ENDPOINTS and _carries_body():
            raise BodyNotAllowed("This address does not take a request body.")
        if request.method not in SAFE_METHODS and not _same_origin(settings):
            raise CrossSiteRequest(
                "This form was sent from another site, so it was refused. "
                "Open the page on this site and try again."
            )


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
