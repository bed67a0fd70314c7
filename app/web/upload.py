"""POST /upload (the form and the JSON API share one handler) and the upload progress fragment."""

from __future__ import annotations

import time
from typing import cast

from quart import Blueprint, Response, abort, request

from ..domain.progress import read_progress, valid_upload_id
from ..domain.uploads import CreatedShare
from ..errors import Problem
from .extension import services
from .guards import takes_body, upload_request_in_flight
from .messages import message, recorded_sentence
from .pages import share_form
from .ratelimit import limited
from .responses import json_response, no_store, page, wants_json
from .streaming import StreamingRequest
from .upload_form import UploadForm, receive_upload
from .urls import revoke_url, share_url

blueprint = Blueprint("upload", __name__)


@blueprint.post("/upload")
@limited("upload")
@takes_body
async def create_share() -> Response:
    # Taken before a byte of the body is read: beyond the cap, 429 at once.
    async with upload_request_in_flight():
        return await _create_share()


async def _create_share() -> Response:
    form = UploadForm()
    try:
        created = await receive_upload(cast(StreamingRequest, request), services().shares, form)
    except Problem as error:
        if wants_json():
            raise
        # Show the form again, as filled in, with what went wrong (files must be re-chosen).
        draft = form.draft
        mode = "text" if draft.text is not None else form.mode
        return no_store(
            await share_form(
                mode,
                status=error.status,
                error=message(error),
                expires_in=draft.expires_in,
                text=draft.text or "",
            )
        )
    return await share_created(created, 201)


async def share_created(created: CreatedShare, status: int) -> Response:
    """The new share's links: JSON for programs, the share-created page for browsers
    (a form upload's answer, and a completed resumable upload's)."""
    url = share_url(created.token)
    revoke = revoke_url(created.revoke_token)
    if wants_json():
        return no_store(
            json_response(
                {
                    "url": url,
                    "revoke_url": revoke,
                    "id": created.share_id,
                    "expires_at": created.expires_at,
                    "size": created.size,
                    "protected": created.protected,
                },
                status,
            )
        )
    # Rendered, not redirected: a redirect would put the secret link in the history.
    return no_store(
        await page(
            "created.html",
            status,
            share=created,
            url=url,
            revoke_url=revoke,
            token=created.token,
            now=time.time(),
        )
    )


@blueprint.get("/upload/progress/<upload_id>")
@limited("poll")
async def upload_progress(upload_id: str) -> Response:
    if not valid_upload_id(upload_id):
        abort(404)
    progress = await read_progress(services().metadata, upload_id)
    failure = progress.failure
    return no_store(
        await page(
            "upload_status.html",
            progress=progress,
            upload_id=upload_id,
            failure=recorded_sentence(failure.key, failure.params) if failure else None,
        )
    )
