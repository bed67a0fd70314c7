"""Reads the upload form as a stream and feeds the file (or text) into a share as it arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from werkzeug.exceptions import RequestEntityTooLarge

from ..domain.progress import ProgressRecorder, valid_upload_id
from ..domain.shares import CreatedShare, ShareService, Upload
from ..errors import InvalidInput, MalformedRequest, ShareError, UploadTooLarge
from .filenames import clean_content_type, clean_filename
from .multipart import (
    Field,
    FileData,
    FileEnd,
    FileStart,
    FormEvent,
    boundary_of,
    read_form,
)
from .streaming import StreamingRequest

FILE_FIELD = "file"
TEXT_FIELD = "text"
TEXT_NAME = "message.txt"
TEXT_TYPE = "text/plain; charset=utf-8"
ONE_FILE_MESSAGE = "Send exactly one file, in the field named \u201cfile\u201d."


@dataclass
class UploadForm:
    """The small fields, kept so a refused form can be shown again as it was filled in."""

    password: str = ""
    expires_in: int | None = None
    text: str | None = None
    upload_id: str | None = None
    mode: str = "file"


@dataclass
class _FilePart:
    name: str
    content_type: str
    upload: Upload
    complete: bool = False


async def receive_upload(
    request: StreamingRequest, shares: ShareService, form: UploadForm
) -> CreatedShare:
    """Stream the multipart body into a new share; nothing stays behind if anything fails.

    ``form`` is filled in as fields arrive, for the caller to re-render on error.
    """
    if request.content_length is not None and request.content_length > shares.max_request_bytes:
        raise UploadTooLarge(shares.too_large_message)
    boundary = boundary_of(request.headers.get("Content-Type"))
    request.body.limit = shares.max_request_bytes
    settings = shares.settings
    # Passwords a little over their limit are read whole and refused by validation, so the
    # rest of the form still gets read and shown again; far over it, the parser stops.
    field_limits = {
        "password": 4 * settings.max_password_bytes,
        TEXT_FIELD: settings.max_text_bytes,
    }
    file: _FilePart | None = None
    progress: ProgressRecorder | None = None
    # A refused small field does not stop the reading of the other small fields, so
    # the form can be shown again as it was filled in; a file is never read after it.
    problem: InvalidInput | None = None
    try:
        async for event in _form_events(request, boundary, field_limits, shares):
            if isinstance(event, Field):
                try:
                    _take_field(form, event, shares)
                except InvalidInput as error:
                    problem = problem or error
                if event.name == "upload_id" and form.upload_id:
                    progress = ProgressRecorder(
                        shares.metadata, form.upload_id, request.content_length
                    )
                    await progress.phase("receiving", received=0)
            elif isinstance(event, FileStart):
                if problem is not None:
                    raise problem
                if event.field_name != FILE_FIELD or file is not None:
                    raise InvalidInput(ONE_FILE_MESSAGE)
                if not event.filename:
                    continue  # a file input left empty; the text field may carry the share
                file = _FilePart(
                    clean_filename(event.filename),
                    clean_content_type(event.content_type),
                    await shares.begin_upload(request.content_length),
                )
            elif isinstance(event, FileData) and file is not None:
                await file.upload.write(event.data)
                if progress is not None:
                    await progress.received(file.upload.size)
            elif isinstance(event, FileEnd) and file is not None:
                file.complete = True
        if problem is not None:
            raise problem
        if progress is not None:
            await progress.phase("securing", received=request.body.received)
        created = await _finish(form, file, shares)
        if progress is not None:
            await progress.phase("stored", received=request.body.received)
        return created
    except BaseException as error:
        if file is not None:
            # Shielded: a cancelled request (client gone, server stopping) must
            # still remove its partial file and upload mark.
            await asyncio.shield(file.upload.abort())
        if progress is not None and isinstance(error, ShareError):
            await asyncio.shield(progress.phase("failed", message=error.message))
        raise


async def _form_events(
    request: StreamingRequest, boundary: bytes, field_limits: dict[str, int], shares: ShareService
) -> AsyncIterator[FormEvent]:
    try:
        async for event in read_form(request.body, boundary, field_limits=field_limits):
            yield event
    except RequestEntityTooLarge:
        # The body limit (file plus form overhead) can trip before the file count does.
        raise UploadTooLarge(shares.too_large_message) from None


async def _finish(form: UploadForm, file: _FilePart | None, shares: ShareService) -> CreatedShare:
    if file is not None and form.text:
        raise InvalidInput("Send either a file or a text message, not both.")
    if file is not None:
        if not file.complete:
            raise MalformedRequest("The file part ended early.")
        return await file.upload.finish(
            kind="file",
            name=file.name,
            content_type=file.content_type,
            password=form.password,
            expires_in=form.expires_in,
        )
    if form.text:
        upload = await shares.begin_upload(len(form.text))
        try:
            await upload.write(form.text.encode("utf-8"))
            return await upload.finish(
                kind="text",
                name=TEXT_NAME,
                content_type=TEXT_TYPE,
                password=form.password,
                expires_in=form.expires_in,
            )
        except BaseException:
            await asyncio.shield(upload.abort())
            raise
    raise InvalidInput("Choose a file or write a message to share.")


def _take_field(form: UploadForm, field: Field, shares: ShareService) -> None:
    """Check small fields as soon as they arrive, so a bad form fails before the file."""
    if field.name == "password":
        shares.validate_password(field.value)
        form.password = field.value
    elif field.name == "expires_in":
        try:
            form.expires_in = shares.validate_expiry(int(field.value))
        except ValueError:
            raise InvalidInput("Choose one of the offered expiry times.") from None
    elif field.name == TEXT_FIELD:
        # Browsers send line breaks as CRLF; the recipient should get what was typed.
        form.text = field.value.replace("\r\n", "\n")
    elif field.name == "mode" and field.value in {"file", "text"}:
        form.mode = field.value
    elif field.name == "upload_id" and valid_upload_id(field.value):
        form.upload_id = field.value
