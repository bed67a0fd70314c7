"""The admin dashboard: every panel is a fragment that refreshes itself.

Counters, the live-share table, the activity feed, the system panel and the
hourly chart each have their own URL; the dashboard page includes them all.
Nothing here ever shows a file name, a token, a key or a message: the index the
table reads holds only ids, sizes, kinds and times.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import cast

from quart import Blueprint, Response, abort, request, url_for
from quart_auth import current_user, logout_user

from ..domain.stats import SortKey
from ..errors import CrossSiteRequest
from .extension import services
from .guards import takes_body
from .ratelimit import limited
from .responses import is_htmx, no_store, page, redirect_to
from .streaming import StreamingRequest

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

PER_PAGE = 20
SHARE_ID = re.compile(r"[0-9a-f]{32}")
# The stream blocks on Redis for less than the client's socket timeout, then
# sends a comment so proxies and the browser know the connection is alive.
STREAM_BLOCK_MS = 4000


@blueprint.before_request
async def require_admin() -> Response | None:
    admin = services().admin
    if not admin.enabled:
        abort(404)
    if not await current_user.is_authenticated:
        if is_htmx():
            # A fragment refresh after the session ended: send the whole page to login.
            return no_store(
                Response(status=401, headers={"HX-Redirect": url_for("auth.login_page")})
            )
        return redirect_to(url_for("auth.login_page"))
    if request.method == "POST":
        form = await request.form
        if not admin.csrf_valid(current_user.auth_id, form.get("csrf")):
            raise CrossSiteRequest("admin_form_refused")
    return None


async def _panel(template: str, **context: object) -> Response:
    session_id = cast(str, current_user.auth_id)
    response = await page(
        template, csrf=services().admin.csrf_token(session_id), now=time.time(), **context
    )
    return no_store(response)


async def _table_context() -> dict[str, object]:
    sort: SortKey = "size" if request.args.get("sort") == "size" else "expiry"
    try:
        number = max(1, int(request.args.get("page", "1")))
    except ValueError:
        number = 1
    return {
        "table": await services().stats.active_shares(sort=sort, page=number, per_page=PER_PAGE)
    }


@blueprint.get("")
@limited("admin")
async def dashboard() -> Response:
    stats = services().stats
    return await _panel(
        "admin.html",
        counters=await stats.counters(),
        events=await stats.recent_events(),
        system=await stats.system_state(),
        hours=await stats.hourly_series(),
        **await _table_context(),
    )


@blueprint.get("/counters")
@limited("admin")
async def counters() -> Response:
    return await _panel("partials/admin_counters.html", counters=await services().stats.counters())


@blueprint.get("/shares")
@limited("admin")
async def shares() -> Response:
    return await _panel("partials/admin_shares.html", **await _table_context())


@blueprint.post("/shares/<share_id>/revoke")
@limited("admin")
@takes_body
async def revoke_share(share_id: str) -> Response:
    if not SHARE_ID.fullmatch(share_id):
        abort(404)
    form = await request.form
    if not is_htmx() and form.get("confirm") != "yes":
        # Without JavaScript the confirmation is a page of its own.
        return await _panel("admin_revoke.html", share_id=share_id)
    await services().shares.revoke_by_id(share_id)
    if is_htmx():
        return await _panel("partials/admin_shares.html", **await _table_context())
    return redirect_to(url_for("admin.dashboard"))


@blueprint.get("/activity")
@limited("admin")
async def activity() -> Response:
    return await _panel(
        "partials/admin_activity.html", events=await services().stats.recent_events()
    )


@blueprint.get("/activity/stream")
@limited("admin")
async def activity_stream() -> Response:
    """Server-sent events: a nudge per new event; the feed then fetches itself."""
    stats = services().stats
    body = cast(StreamingRequest, request).body

    async def nudges() -> AsyncIterator[bytes]:
        last = await stats.latest_event_id()
        yield b"retry: 3000\n\n"
        # Checked as well as relying on cancellation, which Python 3.11 can lose
        # inside redis-py (see README): a stream must never outlive its client.
        while not body.disconnected:
            newest = await stats.wait_for_event(last, STREAM_BLOCK_MS)
            if newest is None:
                yield b": still here\n\n"
                continue
            last = newest
            yield f"event: activity\ndata: {newest}\n\n".encode()

    response = Response(nudges(), content_type="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # let nginx pass events at once
    response.timeout = None
    return response


@blueprint.get("/system")
@limited("admin")
async def system() -> Response:
    return await _panel("partials/admin_system.html", system=await services().stats.system_state())


@blueprint.get("/chart")
@limited("admin")
async def chart() -> Response:
    return await _panel("partials/admin_chart.html", hours=await services().stats.hourly_series())


@blueprint.post("/logout-everywhere")
@limited("admin")
@takes_body
async def logout_everywhere() -> Response:
    await services().admin.close_all_sessions()
    logout_user()
    return redirect_to(url_for("auth.login_page"))
