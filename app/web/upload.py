"""POST /upload: the form and the JSON API share one handler."""

from __future__ import annotations

from typing import cast

from quart import Blueprint, Response, request

from ..http import StreamingRequest
from ..services import services
from .responses import json_response, no_store, page, wants_json
from .upload_form import receive_upload
from .urls import share_url

blueprint = Blueprint("upload", __name__)


@blueprint.post("/upload")
async def create_share() -> Response:
    created = await receive_upload(cast(StreamingRequest, request), services().shares)
    url = share_url(created.token)
    if wants_json():
        return no_store(
            json_response(
                {
                    "url": url,
                    "id": created.share_id,
                    "expires_at": created.expires_at,
                    "size": created.size,
                    "protected": created.protected,
                },
                201,
            )
        )
    return no_store(await page("created.html", 201, share=created, url=url))
