"""A streaming multipart/form-data reader that turns body pieces into form events.

python-multipart does the parsing with callbacks; this wraps it into an async
iterator of ``Field``, ``FileStart``, ``FileData`` and ``FileEnd`` so the
caller can await (encrypt, write) between pieces. File data is handed over as
views into the received pieces: nothing is buffered beyond one piece, and
nothing touches the disk here.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import InvalidInput, MalformedRequest, Problem

MAX_PARTS = 16
# Room for a 10,000-byte file name (names are cut to 255 bytes once read).
MAX_PART_HEADER_BYTES = 32 * 1024
DEFAULT_FIELD_LIMIT = 4 * 1024


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class FileStart:
    field_name: str
    filename: str
    content_type: str


@dataclass(frozen=True, slots=True)
class FileData:
    data: memoryview


@dataclass(frozen=True, slots=True)
class FileEnd:
    pass


FormEvent = Field | FileStart | FileData | FileEnd


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary from a Content-Type header, or a 400 saying what to send."""
    media_type, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise MalformedRequest("not_multipart")
    if len(boundary) > 70:
        raise MalformedRequest("boundary_too_long")
    return boundary


class _Collector:
    """Receives the parser's callbacks for one body piece and queues events."""

    def __init__(self, field_limits: Mapping[str, int]) -> None:
        self.events: list[FormEvent] = []
        self.ended = False
        self._field_limits = field_limits
        self._parts = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._in_file = False
        self._field_name = ""
        self._field_value = bytearray()
        self._field_limit = 0

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise MalformedRequest("too_many_parts", limit=MAX_PARTS)
        self._headers = {}
        self._in_file = False

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]
        self._check_header_size()

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._check_header_size()

    def _check_header_size(self) -> None:
        if len(self._header_field) + len(self._header_value) > MAX_PART_HEADER_BYTES:
            raise MalformedRequest("part_header_too_long")

    def header_end(self) -> None:
        name = self._header_field.decode("latin-1").strip().lower()
        self._headers[name] = bytes(self._header_value).strip()
        self._header_field.clear()
        self._header_value.clear()

    def headers_finished(self) -> None:
        disposition, options = parse_options_header(
            self._headers.get("content-disposition", b"").decode("latin-1")
        )
        if disposition != b"form-data" or b"name" not in options:
            raise MalformedRequest("part_without_name")
        name = _utf8(options[b"name"])
        if b"filename" in options:
            self._in_file = True
            content_type = self._headers.get("content-type", b"").decode("latin-1")
            self.events.append(FileStart(name, _utf8(options[b"filename"]), content_type))
        else:
            self._field_name = name
            self._field_value = bytearray()
            self._field_limit = self._field_limits.get(name, DEFAULT_FIELD_LIMIT)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.events.append(FileData(memoryview(data)[start:end]))
            return
        self._field_value += data[start:end]
        if len(self._field_value) > self._field_limit:
            raise InvalidInput(
                "field_too_long", field=self._field_name[:40], limit_bytes=self._field_limit
            )

    def part_end(self) -> None:
        if self._in_file:
            self.events.append(FileEnd())
        else:
            self.events.append(Field(self._field_name, _utf8(bytes(self._field_value))))

    def end(self) -> None:
        self.ended = True


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("not_utf8") from None


async def read_form(
    body: AsyncIterable[bytes], boundary: bytes, *, field_limits: Mapping[str, int]
) -> AsyncIterator[FormEvent]:
    """Yield form events as the body arrives; raise 400 for anything malformed.

    ``field_limits`` caps the size of named text fields (others get 4 KiB).
    """
    collector = _Collector(field_limits)
    parser = MultipartParser(
        boundary,
        collector.callbacks(),  # type: ignore[arg-type]
        # A little above ours, so our clearer message is the one people see.
        max_header_size=MAX_PART_HEADER_BYTES + 1024,
    )
    async for piece in body:
        if collector.ended:
            continue  # the epilogue after the closing boundary carries nothing
        failure: Problem | None = None
        try:
            parser.write(piece)
        except FormParserError:
            failure = MalformedRequest("malformed_body")
        except Problem as error:
            failure = error
        # Fields parsed before a failure in the same piece still reach the caller,
        # which shows them again in the form next to the error.
        events, collector.events = collector.events, []
        for event in events:
            yield event
        if failure is not None:
            raise failure
    if not collector.ended:
        raise MalformedRequest("body_ended_early")
