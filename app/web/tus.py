"""The tus 1.0.0 endpoint for resumable uploads: ``/tus/`` and ``/tus/<upload secret>``.

Core protocol (``OPTIONS``, ``HEAD``, ``PATCH``) and the creation, creation-with-upload,
termination and expiration extensions (https://tus.io/protocols/resumable-upload).
The routes parse the protocol's headers and call ``ResumableUploads`` (the domain);
the upload's address carries its secret, so it is redacted from every log line.

``Upload-Metadata`` carries the uploader's choices as the form does: ``filename``
(or ``name``), ``filetype`` (or ``type``), ``password``, ``expires_in`` (seconds, one
of the offered choices). After the last byte, ``GET`` of the upload's address gives
the share's links: JSON with ``Accept: application/json``, else the share-created
page, for ``OTS_RESUMABLE_RESULT_SECONDS``; then 410.
"""

from __future__ import annotations

import base64
import binascii
from email.utils import formatdate
from typing import cast

from quart import Blueprint, Response, request

from ..domain.resumable import UploadChoices, UploadState
from ..domain.uploads import ShareDraft
from ..errors import InvalidInput, MalformedRequest, TusVersionUnsupported, WrongContentType
from .extension import services
from .filenames import clean_content_type, clean_filename
from .guards import takes_body, upload_request_in_flight
from .ratelimit import limited
from .responses import no_store
from .streaming import StreamingRequest
from .upload import share_created
from .urls import resumable_upload_url

blueprint = Blueprint("tus", __name__)

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
DEFAULT_NAME = "upload"
DEFAULT_TYPE = "application/octet-stream"


@blueprint.before_request
async def check_version() -> None:
    # OPTIONS is how a client learns the versions; GET is the links page, for browsers.
    if request.method in {"OPTIONS", "GET"}:
        return
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise TusVersionUnsupported("tus_version")


@blueprint.after_request
async def protocol_headers(response: Response) -> Response:
    if request.method != "OPTIONS":
        response.headers["Tus-Resumable"] = TUS_VERSION
    if response.status_code == 412:
        response.headers["Tus-Version"] = TUS_VERSION
    return response


@blueprint.route("/tus/", methods=["OPTIONS"])
@limited("resume")
async def options() -> Response:
    response = Response(status=204)
    response.headers["Tus-Version"] = TUS_VERSION
    response.headers["Tus-Extension"] = EXTENSIONS
    response.headers["Tus-Max-Size"] = str(services().resumable.max_bytes)
    return response


@blueprint.post("/tus/")
@limited("upload")
@takes_body
async def create() -> Response:
    """Create an upload (tus creation), with its first bytes if the body has some."""
    resumable = services().resumable
    length = _whole_number(request.headers.get("Upload-Length"))
    if length is None:
        raise MalformedRequest("upload_length_missing")
    choices = _choices(parse_metadata(request.headers.get("Upload-Metadata", "")))
    has_body = _has_body()
    if has_body:
        _check_content_type()
    async with upload_request_in_flight():
        created = await resumable.create(length, choices)
        state = created.state
        if has_body or length == 0:
            body = cast(StreamingRequest, request).body
            body.limit = resumable.max_bytes
            state = await resumable.append(created.secret, 0, body)
    response = Response(status=201)
    response.headers["Location"] = resumable_upload_url(created.secret)
    _upload_headers(response, state, offset=has_body or length == 0)
    return no_store(response)


@blueprint.route("/tus/<secret>", methods=["HEAD"])
@limited("resume")
async def head(secret: str) -> Response:
    state = await services().resumable.state(secret)
    response = Response(status=200)
    response.headers["Upload-Length"] = str(state.length)
    _upload_headers(response, state, offset=True)
    return no_store(response)


@blueprint.route("/tus/<secret>", methods=["PATCH"])
@limited("resume")
@takes_body
async def patch(secret: str) -> Response:
    return await _append(secret)


@blueprint.delete("/tus/<secret>")
@limited("resume")
async def delete(secret: str) -> Response:
    await services().resumable.terminate(secret)
    return no_store(Response(status=204))


@blueprint.post("/tus/<secret>")
@limited("resume")
@takes_body
async def overridden(secret: str) -> Response:
    """``X-HTTP-Method-Override``: for clients behind proxies that pass only GET and POST."""
    method = request.headers.get("X-HTTP-Method-Override", "").upper()
    if method == "PATCH":
        return await _append(secret)
    if method == "DELETE":
        await services().resumable.terminate(secret)
        return no_store(Response(status=204))
    raise MalformedRequest("method_override")


@blueprint.get("/tus/<secret>")
@limited("resume")
async def result(secret: str) -> Response:
    """The links of the completed upload, for a short window after its last byte."""
    return await share_created(await services().resumable.result(secret), 200)


async def _append(secret: str) -> Response:
    resumable = services().resumable
    _check_content_type()
    offset = _whole_number(request.headers.get("Upload-Offset"))
    if offset is None:
        raise MalformedRequest("upload_length_invalid")
    body = cast(StreamingRequest, request).body
    body.limit = resumable.max_bytes
    async with upload_request_in_flight():
        state = await resumable.append(secret, offset, body)
    response = Response(status=204)
    _upload_headers(response, state, offset=True)
    return no_store(response)


# --- the protocol's headers ---


def parse_metadata(header: str) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs, the value optional."""
    found: dict[str, str] = {}
    if not header.strip():
        return found
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if not key or len(parts) > 2 or key in found or not key.isascii():
            raise MalformedRequest("upload_metadata_invalid")
        value = b""
        if len(parts) == 2:
            try:
                value = base64.b64decode(parts[1], validate=True)
            except binascii.Error:
                raise MalformedRequest("upload_metadata_invalid") from None
        try:
            found[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedRequest("upload_metadata_invalid") from None
    return found


def _choices(metadata: dict[str, str]) -> UploadChoices:
    shares = services().shares
    draft = ShareDraft(password=metadata.get("password", ""))
    if "expires_in" in metadata:
        expires_in = metadata["expires_in"]
        if not expires_in.isascii() or not expires_in.isdigit():
            raise InvalidInput("expiry_not_offered")
        draft.expires_in = int(expires_in)
    options = shares.options(draft)
    name = metadata.get("filename") or metadata.get("name") or DEFAULT_NAME
    content_type = metadata.get("filetype") or metadata.get("type") or DEFAULT_TYPE
    return UploadChoices(
        name=clean_filename(name) or DEFAULT_NAME,
        content_type=clean_content_type(content_type),
        password=options.password,
        lifetime=options.lifetime,
    )


def _whole_number(value: str | None) -> int | None:
    """A header's whole number; None when the header is missing."""
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise MalformedRequest("upload_length_invalid")
    return int(value)


def _has_body() -> bool:
    if request.content_length:
        return True
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _check_content_type() -> None:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != OFFSET_CONTENT_TYPE:
        raise WrongContentType()


def _upload_headers(response: Response, state: UploadState, *, offset: bool) -> None:
    if offset:
        response.headers["Upload-Offset"] = str(state.offset)
    if not state.complete:
        response.headers["Upload-Expires"] = formatdate(state.expires_at, usegmt=True)
