"""Unit tests for app/multipart.py: the streaming multipart/form-data reader."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable, Mapping

import pytest

from onetimeshare.errors import InvalidInput, MalformedRequest
from onetimeshare.web.multipart import (
    DEFAULT_FIELD_LIMIT,
    MAX_PART_HEADER_BYTES,
    MAX_PARTS,
    Field,
    FileData,
    FileEnd,
    FileStart,
    FormEvent,
    boundary_of,
    read_form,
)

BOUNDARY = b"----otsBoundary7MA4YWxkTrZu0gW"
CRLF = b"\r\n"

# File bytes that look like the start of a delimiter without being one, plus every byte value.
TRICKY_FILE = (
    b"line one\r\n"
    + b"\r\n--"
    + BOUNDARY[:-3]
    + b" not quite\r\n"
    + b"x--"
    + BOUNDARY
    + b" without a leading CRLF\r\n"
    + b"\r\r\n\n--\r\n-"
    + bytes(range(256))
    + b"\r\n--"
    + BOUNDARY[:5]
    + b"\r"
)


def field_part(name: str | bytes, value: bytes) -> bytes:
    raw_name = name.encode("utf-8") if isinstance(name, str) else name
    return b'Content-Disposition: form-data; name="' + raw_name + b'"\r\n\r\n' + value


def file_part(
    name: str, filename: str | bytes, data: bytes, content_type: bytes | None = b"text/plain"
) -> bytes:
    raw_filename = filename.encode("utf-8") if isinstance(filename, str) else filename
    headers = (
        b'Content-Disposition: form-data; name="'
        + name.encode("utf-8")
        + b'"; filename="'
        + raw_filename
        + b'"\r\n'
    )
    if content_type is not None:
        headers += b"Content-Type: " + content_type + b"\r\n"
    return headers + b"\r\n" + data


def body_of(*parts: bytes, boundary: bytes = BOUNDARY, close: bool = True) -> bytes:
    out = b""
    for part in parts:
        out += b"--" + boundary + CRLF + part + CRLF
    if close:
        out += b"--" + boundary + b"--" + CRLF
    return out


async def stream(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def collect(
    pieces: Iterable[bytes],
    boundary: bytes = BOUNDARY,
    field_limits: Mapping[str, int] | None = None,
) -> list[FormEvent]:
    events: list[FormEvent] = []
    async for event in read_form(stream(pieces), boundary, field_limits=field_limits or {}):
        if isinstance(event, FileData):
            assert isinstance(event.data, memoryview)
            assert len(event.data) > 0, "no empty FileData events"
            # Copy now: the view is only promised to be valid while its piece is.
            event = FileData(memoryview(bytes(event.data)))
        events.append(event)
    return events


def merged(events: list[FormEvent]) -> list[object]:
    """Events with consecutive FileData joined into one bytes value, for exact comparison."""
    out: list[object] = []
    for event in events:
        if isinstance(event, FileData):
            if out and isinstance(out[-1], bytes):
                out[-1] += bytes(event.data)
            else:
                out.append(bytes(event.data))
        else:
            out.append(event)
    return out


def one_byte(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


def random_splits(body: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(body)), k=min(len(body) - 1, rng.randint(1, 40))))
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def splits(body: bytes) -> list[list[bytes]]:
    """Whole, one byte at a time, and a handful of random split patterns."""
    return [[body], one_byte(body), *(random_splits(body, seed) for seed in range(8))]


# --- boundary_of -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("multipart/form-data; boundary=abc", b"abc"),
        ('multipart/form-data; boundary="quoted boundary"', b"quoted boundary"),
        ("Multipart/Form-Data; charset=utf-8; boundary=XyZ", b"XyZ"),
        ("multipart/form-data;boundary=" + "b" * 70, b"b" * 70),
        (
            "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
            b"----WebKitFormBoundary7MA4YWxkTrZu0gW",
        ),
    ],
)
def test_boundary_of_accepts(content_type: str, expected: bytes) -> None:
    assert boundary_of(content_type) == expected


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain; boundary=abc",
        "multipart/mixed; boundary=abc",
        "multipart/form-data",
        "multipart/form-data; charset=utf-8",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary=""',
        "multipart/form-data; boundary=" + "b" * 71,
    ],
)
def test_boundary_of_rejects(content_type: str | None) -> None:
    with pytest.raises(MalformedRequest):
        boundary_of(content_type)


# --- event sequences ---------------------------------------------------------------------


def test_tricky_file_holds_no_real_delimiter() -> None:
    assert b"\r\n--" + BOUNDARY not in TRICKY_FILE
    assert b"--" + BOUNDARY in TRICKY_FILE


async def test_fields_then_file_exact_events() -> None:
    body = body_of(
        field_part("expiry", b"3600"),
        field_part("message", "h\u00e9llo \u65e5\u672c".encode()),
        file_part("file", "report.bin", TRICKY_FILE, b"application/octet-stream"),
    )
    expected = [
        Field("expiry", "3600"),
        Field("message", "h\u00e9llo \u65e5\u672c"),
        FileStart("file", "report.bin", "application/octet-stream"),
        TRICKY_FILE,
        FileEnd(),
    ]
    for pieces in splits(body):
        assert merged(await collect(pieces)) == expected


async def test_every_two_piece_split() -> None:
    body = body_of(field_part("a", b"1"), file_part("file", "f.txt", TRICKY_FILE[:120]))
    expected = [
        Field("a", "1"),
        FileStart("file", "f.txt", "text/plain"),
        TRICKY_FILE[:120],
        FileEnd(),
    ]
    for cut in range(len(body) + 1):
        assert merged(await collect([body[:cut], body[cut:]])) == expected, cut


async def test_file_then_field() -> None:
    body = body_of(file_part("file", "a.txt", b"data"), field_part("password", b"pw"))
    expected = [
        FileStart("file", "a.txt", "text/plain"),
        b"data",
        FileEnd(),
        Field("password", "pw"),
    ]
    for pieces in splits(body):
        assert merged(await collect(pieces)) == expected


async def test_empty_file_and_empty_field() -> None:
    body = body_of(field_part("note", b""), file_part("file", "empty.txt", b""))
    expected = [Field("note", ""), FileStart("file", "empty.txt", "text/plain"), FileEnd()]
    for pieces in splits(body):
        assert merged(await collect(pieces)) == expected


async def test_large_file_in_random_pieces() -> None:
    data = random.Random(7).randbytes(300_000)
    body = body_of(file_part("file", "big.bin", data, b"application/octet-stream"))
    for seed in range(3):
        events = await collect(random_splits(body, seed))
        assert merged(events) == [
            FileStart("file", "big.bin", "application/octet-stream"),
            data,
            FileEnd(),
        ]


async def test_file_without_content_type() -> None:
    body = body_of(file_part("file", "x", b"abc", content_type=None))
    assert merged(await collect([body])) == [FileStart("file", "x", ""), b"abc", FileEnd()]


async def test_utf8_filename_intact() -> None:
    filename = "R\u00e9sum\u00e9 \u65e5\u672c\u8a9e \U0001f389.pdf"
    body = body_of(file_part("file", filename, b"%PDF", b"application/pdf"))
    for pieces in splits(body):
        events = await collect(pieces)
        assert events[0] == FileStart("file", filename, "application/pdf")


async def test_utf8_field_name_intact() -> None:
    body = body_of(field_part("n\u00e4me", b"v"))
    assert await collect([body]) == [Field("n\u00e4me", "v")]


async def test_field_value_with_multibyte_split_across_pieces() -> None:
    value = "\u20ac" * 50
    body = body_of(field_part("message", value.encode()))
    for pieces in splits(body):
        assert await collect(pieces) == [Field("message", value)]


async def test_leading_crlf_and_epilogue_ignored() -> None:
    body = CRLF + body_of(field_part("a", b"1")) + b"epilogue that is ignored\r\n"
    for pieces in splits(body):
        assert await collect(pieces) == [Field("a", "1")]


async def test_pieces_after_closing_boundary_ignored() -> None:
    body = body_of(field_part("a", b"1"))
    events = await collect([body, b"garbage after the end", b"--more"])
    assert events == [Field("a", "1")]


async def test_closing_boundary_without_trailing_crlf() -> None:
    body = body_of(field_part("a", b"1"))
    assert body.endswith(b"--" + CRLF)
    assert await collect([body[:-2]]) == [Field("a", "1")]


async def test_exactly_max_parts_accepted() -> None:
    body = body_of(*(field_part(f"f{i}", str(i).encode()) for i in range(MAX_PARTS)))
    events = await collect([body])
    assert events == [Field(f"f{i}", str(i)) for i in range(MAX_PARTS)]


async def test_events_arrive_before_body_ends() -> None:
    """Events for earlier pieces are yielded before later pieces are read."""
    body = body_of(field_part("a", b"1"), file_part("file", "f", b"x" * 100))
    split = body.index(b"Content-Disposition", body.index(b"Content-Disposition") + 1)
    reads: list[int] = []

    async def tracked() -> AsyncIterator[bytes]:
        reads.append(1)
        yield body[:split]
        reads.append(2)
        yield body[split:]

    seen: list[tuple[FormEvent, int]] = []
    async for event in read_form(tracked(), BOUNDARY, field_limits={}):
        seen.append((event, len(reads)))
    assert seen[0] == (Field("a", "1"), 1)
    assert all(count == 2 for _event, count in seen[1:])


# --- malformed bodies ---------------------------------------------------------------------


async def assert_malformed(pieces: Iterable[bytes]) -> list[FormEvent]:
    events: list[FormEvent] = []
    with pytest.raises(MalformedRequest):
        async for event in read_form(stream(pieces), BOUNDARY, field_limits={}):
            events.append(event)
    return events


async def test_missing_closing_boundary() -> None:
    body = body_of(field_part("a", b"1"), file_part("file", "f.txt", b"data"), close=False)
    for pieces in splits(body):
        events = await assert_malformed(pieces)
        # Whatever was complete came through first; the file never ended.
        assert FileEnd() not in events
        assert events[0] == Field("a", "1")


async def test_body_cut_mid_file() -> None:
    body = body_of(file_part("file", "f.txt", b"0123456789" * 10))
    cut = body.index(b"0123456789") + 35
    events = await assert_malformed([body[:cut]])
    assert FileEnd() not in events


async def test_body_cut_in_headers() -> None:
    body = body_of(field_part("a", b"1"))
    await assert_malformed([body[: body.index(b"form-data")]])


async def test_empty_body() -> None:
    assert await assert_malformed([]) == []
    assert await assert_malformed([b""]) == []


async def test_more_than_max_parts() -> None:
    body = body_of(*(field_part(f"f{i}", b"v") for i in range(MAX_PARTS + 1)))
    for pieces in ([body], one_byte(body)):
        events = await assert_malformed(pieces)
        assert len(events) <= MAX_PARTS


async def test_many_tiny_parts_rejected() -> None:
    body = body_of(*(field_part("x", b"") for _ in range(1000)))
    await assert_malformed([body])


@pytest.mark.parametrize(
    "garbage",
    [
        b"this is not multipart at all",
        b'{"json": true}',
        b'--wrong-boundary\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--wrong--',
        b"--" + BOUNDARY + b"XX\r\n",
        b"--" + BOUNDARY + b"\r\nno colon header line\r\n\r\nvalue\r\n--" + BOUNDARY + b"--",
        b"--" + BOUNDARY + b"\r\n: empty-name\r\n\r\nvalue\r\n--" + BOUNDARY + b"--",
        bytes(range(256)),
    ],
)
async def test_garbage_body(garbage: bytes) -> None:
    for pieces in ([garbage], one_byte(garbage)):
        await assert_malformed(pieces)


async def test_non_utf8_field_value() -> None:
    body = body_of(field_part("message", b"caf\xe9 \xff\xfe"))
    for pieces in splits(body):
        await assert_malformed(pieces)


async def test_non_utf8_field_name() -> None:
    await assert_malformed([body_of(field_part(b"n\xe4me", b"v"))])


async def test_non_utf8_filename() -> None:
    await assert_malformed([body_of(file_part("file", b"caf\xe9.txt", b"data"))])


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Disposition: form-data\r\n",
        b'Content-Disposition: form-data; filename="a.txt"\r\n',
        b'Content-Disposition: attachment; name="a"\r\n',
        b'Content-Disposition: inline; name="a"\r\n',
        b"Content-Type: text/plain\r\n",
        b"",
    ],
)
async def test_part_without_a_name(headers: bytes) -> None:
    body = body_of(field_part("ok", b"1"), headers + CRLF + b"value")
    for pieces in ([body], one_byte(body)):
        events = await assert_malformed(pieces)
        assert events in ([], [Field("ok", "1")])


async def test_over_long_part_header() -> None:
    body = body_of(
        b'Content-Disposition: form-data; name="a"\r\nX-Padding: '
        + b"p" * (MAX_PART_HEADER_BYTES + 100)
        + CRLF
        + CRLF
        + b"1"
    )
    for pieces in ([body], random_splits(body, 1)):
        await assert_malformed(pieces)


async def test_many_headers_adding_up_rejected() -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(60))
    body = body_of(headers + b'Content-Disposition: form-data; name="a"\r\n\r\n1')
    await assert_malformed([body])


# --- field limits ----------------------------------------------------------------------


async def test_listed_field_at_limit_accepted() -> None:
    body = body_of(field_part("message", b"m" * 10))
    for pieces in splits(body):
        events = await collect(pieces, field_limits={"message": 10})
        assert events == [Field("message", "m" * 10)]


async def test_listed_field_above_limit_rejected() -> None:
    body = body_of(field_part("message", b"m" * 11))
    for pieces in splits(body):
        with pytest.raises(InvalidInput):
            await collect(pieces, field_limits={"message": 10})


async def test_listed_field_may_exceed_default_limit() -> None:
    value = b"m" * (DEFAULT_FIELD_LIMIT * 3)
    body = body_of(field_part("message", value))
    events = await collect([body], field_limits={"message": DEFAULT_FIELD_LIMIT * 3})
    assert events == [Field("message", value.decode())]


async def test_unlisted_field_at_default_limit_accepted() -> None:
    value = b"v" * DEFAULT_FIELD_LIMIT
    body = body_of(field_part("other", value))
    assert await collect([body], field_limits={"message": 10}) == [Field("other", value.decode())]


async def test_unlisted_field_above_default_limit_rejected() -> None:
    body = body_of(field_part("other", b"v" * (DEFAULT_FIELD_LIMIT + 1)))
    for pieces in ([body], one_byte(body), random_splits(body, 3)):
        with pytest.raises(InvalidInput):
            await collect(pieces, field_limits={"message": 10 * DEFAULT_FIELD_LIMIT})


async def test_huge_field_rejected_without_reading_the_rest() -> None:
    """The limit trips while the value streams in, not after the whole body is read."""
    pieces_read = 0
    total_pieces = 1000

    async def endless_field() -> AsyncIterator[bytes]:
        nonlocal pieces_read
        yield b"--" + BOUNDARY + CRLF + b'Content-Disposition: form-data; name="a"\r\n\r\n'
        for _ in range(total_pieces):
            pieces_read += 1
            yield b"x" * 1024

    with pytest.raises(InvalidInput):
        async for _event in read_form(endless_field(), BOUNDARY, field_limits={"a": 2048}):
            pass
    assert pieces_read < 10


async def test_file_data_not_limited_by_field_limits() -> None:
    data = b"f" * (DEFAULT_FIELD_LIMIT * 4)
    body = body_of(file_part("file", "f.bin", data))
    events = await collect([body], field_limits={"file": 10})
    assert merged(events) == [FileStart("file", "f.bin", "text/plain"), data, FileEnd()]
