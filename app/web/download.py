"""The recipient's side: a landing page that never consumes, and the one-time download."""

from __future__ import annotations

from quart import Blueprint, Response, request

from ..errors import PasswordRequired
from ..services import services
from .filenames import content_disposition
from .responses import no_store, page, wants_json

blueprint = Blueprint("download", __name__)


@blueprint.get("/d/<token>")
async def landing(token: str) -> Response:
    # Safe for link previews and mail scanners: looking never consumes.
    share = await services().shares.inspect(token)
    return no_store(await page("landing.html", share=share, token=token))


@blueprint.post("/d/<token>")
async def download(token: str) -> Response:
    form = await request.form
    shares = services().shares
    try:
        result = await shares.claim(token, form.get("password"))
    except PasswordRequired as error:
        if wants_json():
            raise
        # Show the password form again, with what went wrong and the tries left.
        share = await shares.inspect(token)
        return no_store(
            await page("landing.html", error.status, share=share, token=token, error=error.message)
        )
    response = Response(
        result.chunks,
        status=200,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": content_disposition(result.name),
            "Content-Length": str(result.size),
            "X-Content-Type-Options": "nosniff",
        },
    )
    # Idle timeouts guard the transfer instead of a total deadline (see app.http).
    response.timeout = None
    return no_store(response)
