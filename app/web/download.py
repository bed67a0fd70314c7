"""The recipient's side: a landing page that never consumes, the one-time download or reveal,
the password check, and the expiry countdown."""

from __future__ import annotations

import time

from quart import Blueprint, Response, request

from ..domain.shares import ShareView
from ..errors import PasswordCheckBusy, PasswordRequired, ShareDestroyed
from .errors import with_retry_after
from .extension import services
from .filenames import content_disposition
from .guards import takes_body
from .messages import message
from .ratelimit import limited
from .responses import is_htmx, no_store, page, wants_json

blueprint = Blueprint("download", __name__)

# Answered with the password form again (or JSON), not with a whole error page.
PASSWORD_PROBLEMS = (PasswordRequired, PasswordCheckBusy, ShareDestroyed)


@blueprint.get("/d/<token>")
@limited("page")
async def landing(token: str) -> Response:
    # Safe for link previews and mail scanners: looking never consumes.
    share = await services().shares.inspect(token)
    return no_store(await page("landing.html", share=share, token=token, now=time.time()))


@blueprint.get("/d/<token>/status")
@limited("poll")
async def status(token: str) -> Response:
    """The expiry countdown; it refreshes itself until the share is gone."""
    current = await services().shares.status(token)
    return no_store(await page("share_status.html", status=current, token=token, now=time.time()))


@blueprint.post("/d/<token>/unlock")
@limited("download")
@takes_body
async def unlock(token: str) -> Response:
    """Check a file's password without consuming it, then hand over a ready download form.

    htmx posts the password form here so a wrong password can be swapped in
    place (a download response cannot be); the browser then downloads with a
    plain form post, which checks the password once more and consumes.
    """
    password = (await request.form).get("password")
    try:
        unlocked = await services().shares.unlock(token, password)
    except PASSWORD_PROBLEMS as error:
        return await _password_problem(token, error)
    # The form carries a single-use proof of the checked password, never the password.
    return no_store(
        await page("unlocked.html", share=unlocked.view, token=token, proof=unlocked.proof)
    )


@blueprint.post("/d/<token>")
@limited("download")
@takes_body
async def download(token: str) -> Response:
    form = await request.form
    shares = services().shares
    try:
        result = await shares.claim(token, form.get("password"), form.get("unlock"))
    except PASSWORD_PROBLEMS as error:
        return await _password_problem(token, error)
    if result.kind == "text":
        return no_store(await page("reveal.html", text=await result.read_text()))
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
    # Idle timeouts guard the transfer instead of a total deadline (see web/streaming.py).
    response.timeout = None
    return no_store(response)


async def _password_problem(
    token: str, error: PasswordRequired | PasswordCheckBusy | ShareDestroyed
) -> Response:
    """A missing or wrong password (or one that must wait its turn) shows the form again
    with the tries left; the last wrong one shows that the share is gone. JSON clients
    get the error as JSON."""
    if wants_json() or isinstance(error, ShareDestroyed):
        raise error
    return with_retry_after(await _password_form(token, error), error)


async def _password_form(token: str, error: PasswordRequired | PasswordCheckBusy) -> Response:
    share: ShareView = await services().shares.inspect(token)
    if not is_htmx():
        return no_store(
            await page(
                "landing.html",
                error.status,
                share=share,
                token=token,
                error=message(error),
                now=time.time(),
            )
        )
    response = await page(
        "partials/password_form.html", error.status, share=share, token=token, error=message(error)
    )
    # Success replaces the whole panel; a password problem only the form.
    response.headers["HX-Retarget"] = "#password-panel"
    response.headers["HX-Reswap"] = "outerHTML"
    return no_store(response)
