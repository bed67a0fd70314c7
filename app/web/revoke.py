"""The uploader's revoke link: a confirmation page (GET never destroys) and the revoke itself."""

from __future__ import annotations

import time

from quart import Blueprint, Response, url_for

from ..domain.shares import ShareStatus
from .extension import services
from .ratelimit import limited
from .responses import is_htmx, no_store, page, redirect_to

blueprint = Blueprint("revoke", __name__)


@blueprint.get("/r/<revoke_token>")
@limited("page")
async def confirm(revoke_token: str) -> Response:
    return await _revoke_page(await services().shares.revoke_status(revoke_token), revoke_token)


@blueprint.post("/r/<revoke_token>")
@limited("download")
async def revoke(revoke_token: str) -> Response:
    status = await services().shares.revoke(revoke_token)
    if is_htmx():
        return await _revoke_page(status, revoke_token)
    # Post/Redirect/Get: reloading the result page must not post again.
    return redirect_to(url_for("revoke.confirm", revoke_token=revoke_token))


async def _revoke_page(status: ShareStatus, revoke_token: str) -> Response:
    return no_store(
        await page("revoke.html", status=status, revoke_token=revoke_token, now=time.time())
    )
