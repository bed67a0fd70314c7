"""Reads the upload form as a stream and feeds the file into a share as it arrives."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..errors import InvalidInput, MalformedRequest, UploadTooLarge
from ..http import StreamingRequest
from ..multipart import Field, FileData, FileEnd, FileStart, boundary_of, read_form
from ..shares import CreatedShare, ShareService, Upload
from .filenames import clean_filename

FILE_FIELD = "file"
ONE_FILE_MESSAGE = "Send exactly one file, in the field named \u201cfile\u201d."


@dataclass
class _Form:
    password: str = ""
    expires_in: int | None = None
    filename: str | None = None
    content_type: str = "application/octet-stream"
    file_complete: bool = False


async def receive_upload(request: StreamingRequest, shares: ShareService) -> CreatedShare:
    """Stream the multipart body into a new share; nothing stays behind if anything fails."""
    if request.content_length is not None and request.content_length > shares.max_request_bytes:
        raise UploadTooLarge(shares.too_large_message)
    boundary = boundary_of(request.headers.get("Content-Type"))
    request.body.limit = shares.max_request_bytes
    form = _Form()
    upload: Upload | None = None
    field_limits = {"password": shares.settings.max_password_bytes}
    try:
        async for event in read_form(request.body, boundary, field_limits=field_limits):
            if isinstance(event, Field):
                _take_field(form, event, shares)
            elif isinstance(event, FileStart):
                if event.field_name != FILE_FIELD or upload is not None:
                    raise InvalidInput(ONE_FILE_MESSAGE)
                if not event.filename:
                    raise InvalidInput("Choose a file to share.")
                form.filename = clean_filename(event.filename)
                form.content_type = event.content_type or form.content_type
                upload = await shares.begin_upload(request.content_length)
            elif isinstance(event, FileData):
                assert upload is not None
                await upload.write(event.data)
            elif isinstance(event, FileEnd):
                form.file_complete = True
        if upload is None or form.filename is None:
            raise InvalidInput("Choose a file to share.")
        if not form.file_complete:
            raise MalformedRequest("The file part ended early.")
        return await upload.finish(
            kind="file",
            name=form.filename,
            content_type=form.content_type,
            password=form.password,
            expires_in=form.expires_in,
        )
    except BaseException:
        if upload is not None:
            # Shielded: a cancelled request (client gone, server stopping) must
            # still remove its partial file and upload mark.
            await asyncio.shield(upload.abort())
        raise


def _take_field(form: _Form, field: Field, shares: ShareService) -> None:
    """Check small fields as soon as they arrive, so a bad form fails before the file."""
    if field.name == "password":
        shares.validate_password(field.value)
        form.password = field.value
    elif field.name == "expires_in":
        try:
            form.expires_in = shares.validate_expiry(int(field.value))
        except ValueError:
            raise InvalidInput("Choose one of the offered expiry times.") from None
