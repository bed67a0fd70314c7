"""The home page with the upload form."""

from __future__ import annotations

from quart import Blueprint, Response

from ..services import services
from .responses import page

blueprint = Blueprint("pages", __name__)


@blueprint.get("/")
async def home() -> Response:
    settings = services().settings
    return await page(
        "home.html",
        expiry_choices=settings.expiry_choices,
        default_expiry=settings.default_expiry,
        max_upload_bytes=settings.max_upload_bytes,
    )
