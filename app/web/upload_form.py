"""Reads the upload form as a stream and hands it to the share service part by part.

The multipart body becomes the parts the domain reads (``domain/uploads.py``): the
small fields by name, and the file with its bytes as they arrive. Everything else
(checking the fields, the progress phases, cleaning up) is the share service's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from werkzeug.exceptions import RequestEntityTooLarge

from ..config import Settings
from ..domain.shares import ShareService
from ..domain.uploads import (
    CreatedShare,
    Expiry,
    IncomingFile,
    Password,
    ProgressId,
    ShareDraft,
    StrayFile,
    Text,
    UploadPart,
)
from ..errors import MalformedRequest
from .filenames import clean_content_type, clean_filename
from .multipart import Field, FileData, FileEnd, FileStart, FormEvent, boundary_of, read_form
from .streaming import StreamingRequest

FILE_FIELD = "file"
TEXT_FIELD = "text"
# The form's small fields, and what each is to the share.
SMALL_FIELDS: dict[str, type[Password | Expiry | Text | ProgressId]] = {
    "password": Password,
    "expires_in": Expiry,
    TEXT_FIELD: Text,
    "upload_id": ProgressId,
}
MODES = frozenset({"file", "text"})


@dataclass
class UploadForm:
    """What a refused form is shown again with: the choices the service accepted, and
    which of the form's two modes was open."""

    draft: ShareDraft = field(default_factory=ShareDraft)
    mode: str = "file"


async def receive_upload(
    request: StreamingRequest, shares: ShareService, form: UploadForm
) -> CreatedShare:
    """Stream the multipart body into a new share; nothing stays behind if anything fails.

    ``form`` is filled in as fields arrive, for the caller to re-render on error.
    """
    if request.content_length is not None and request.content_length > shares.max_request_bytes:
        raise shares.too_large()
    boundary = boundary_of(request.headers.get("Content-Type"))
    request.body.limit = shares.max_request_bytes
    return await shares.create(FormUpload(request, boundary, shares, form), form.draft)


class FormUpload:
    """A multipart upload body, as the share service reads it (an ``UploadSource``)."""

    def __init__(
        self, request: StreamingRequest, boundary: bytes, shares: ShareService, form: UploadForm
    ) -> None:
        self._request = request
        self._boundary = boundary
        self._shares = shares
        self._form = form
        self._field_limits = _field_limits(shares.settings)

    @property
    def declared_bytes(self) -> int | None:
        return self._request.content_length

    @property
    def received_bytes(self) -> int:
        return self._request.body.received

    async def parts(self) -> AsyncGenerator[UploadPart, None]:
        async with contextlib.aclosing(self._events()) as events:
            async for event in events:
                if isinstance(event, Field):
                    part = self._small_field(event)
                    if part is not None:
                        yield part
                elif isinstance(event, FileStart):
                    if event.field_name != FILE_FIELD:
                        yield StrayFile()
                        continue
                    # No name at all: a file input left empty (a cleaned name never is).
                    name = clean_filename(event.filename) if event.filename else ""
                    async with contextlib.aclosing(_file_data(events)) as chunks:
                        yield IncomingFile(name, clean_content_type(event.content_type), chunks)
                        # Whatever of the file the service did not read (an empty input).
                        async for _ in chunks:
                            pass

    def _small_field(self, event: Field) -> UploadPart | None:
        if event.name == "mode":
            if event.value in MODES:
                self._form.mode = event.value
            return None
        kind = SMALL_FIELDS.get(event.name)
        if kind is None:
            return None
        if kind is Text:
            # Browsers send line breaks as CRLF; the recipient should get what was typed.
            return Text(event.value.replace("\r\n", "\n"))
        return kind(event.value)

    async def _events(self) -> AsyncGenerator[FormEvent, None]:
        try:
            async for event in read_form(
                self._request.body, self._boundary, field_limits=self._field_limits
            ):
                yield event
        except RequestEntityTooLarge:
            # The body limit (file plus form overhead) can trip before the file count does.
            raise self._shares.too_large() from None


def _field_limits(settings: Settings) -> dict[str, int]:
    # Passwords a little over their limit are read whole and refused by the service, so
    # the rest of the form still gets read and shown again; far over it, the parser stops.
    return {"password": 4 * settings.max_password_bytes, TEXT_FIELD: settings.max_text_bytes}


async def _file_data(events: AsyncGenerator[FormEvent, None]) -> AsyncGenerator[memoryview, None]:
    """The data of the file part that just started, up to its end."""
    async for event in events:
        if isinstance(event, FileData):
            yield event.data
        elif isinstance(event, FileEnd):
            return
    raise MalformedRequest("file_ended_early")
