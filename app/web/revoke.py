"""The uploader's revoke link: a confirmation page (GET never destroys) and the revoke itself."""

from __future__ import annotations

import time

from quart import Blueprint, Response, url_for

from ..ratelimit import limited
from ..services import services
from .responses import is_htmx, no_store, page

blueprint = Blueprint("revoke", __name__)


@blueprint.get("/r/<revoke_token>")
@limited("page")
async def confirm(revoke_token: str) -> Response:
    status = await services().shares.revoke_status(revoke_token)
    return no_store(
        await page("revoke.html", status=status, revoke_token=revoke_token, now=time.time())
    )


@blueprint.post("/r/<revoke_token>")
@limited("download")
async def revoke(revoke_token: str) -> Response:
    status = await services().shares.revoke(revoke_token)
    if is_htmx():
        return no_store(
            await page("revoke.html", status=status, revoke_token=revoke_token, now=time.time())
        )
    # Post/Redirect/Get: reloading the result page must not post again.
    return no_store(
        Response(
            status=303, headers={"Location": url_for("revoke.confirm", revoke_token=revoke_token)}
        )
    )
