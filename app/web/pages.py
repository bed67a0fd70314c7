"""The home page: the form to share a file or a text message."""

from __future__ import annotations

from quart import Blueprint, Response, request

from ..domain.progress import new_upload_id
from .extension import services
from .ratelimit import limited
from .responses import page

blueprint = Blueprint("pages", __name__)

MODES = ("file", "text")


@blueprint.get("/")
@limited("page")
async def home() -> Response:
    mode = request.args.get("mode", "file")
    return await share_form(mode if mode in MODES else "file")


async def share_form(
    mode: str,
    *,
    status: int = 200,
    error: str | None = None,
    expires_in: int | None = None,
    text: str = "",
) -> Response:
    """The form page (or, for htmx, the form fragment), fresh or shown again with an error."""
    settings = services().settings
    return await page(
        "home.html",
        status,
        mode=mode,
        upload_id=new_upload_id(),
        expiry_choices=settings.expiry_choices,
        selected_expiry=expires_in or settings.default_expiry,
        max_upload_bytes=settings.max_upload_bytes,
        max_text_bytes=settings.max_text_bytes,
        max_password_bytes=settings.max_password_bytes,
        error=error,
        text=text,
    )
