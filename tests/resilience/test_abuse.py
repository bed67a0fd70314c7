"""Hostile and broken input: each gets its exact status and a clean answer, and leaves nothing.

File names that try to climb directories, hide their extension, overflow or inject
headers; markup in names and messages; broken, oversized and lying request bodies;
malformed tokens; wrong methods and oversized addresses and headers. No answer may
carry a traceback, every JSON error is ``{"error", "code"}``, and nothing is left on
disk or in Redis that a successful share would not leave.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import redis
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import MIB, Settings
from onetimeshare.domain.crypto import (
    InvalidToken,
    decode_token,
    encode_token,
    new_token,
    revoke_id_for,
)
from tests.helpers import (
    BASE64URL_ALPHABET,
    BOUNDARY,
    FORM,
    HTML,
    JSON,
    LiveServer,
    LiveServerFactory,
    assert_no_traceback,
    files_in,
    json_error,
    multipart,
    random_bytes,
    read_one_response,
    share_keys,
    token_path,
    upload_head,
    wait_until,
)

# The whole Content-Disposition: an ASCII fallback with no quote, then the exact name,
# percent-encoded down to unreserved characters.
DISPOSITION = re.compile(
    r"attachment; filename=\"(?P<fallback>[\x20-\x21\x23-\x7e]*)\"; "
    r"filename\*=UTF-8''(?P<encoded>[A-Za-z0-9%._~-]*)"
)


def assert_nothing_left(blob_dir: Path, redis_client: redis.Redis) -> None:
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == []


async def checked_json_error(response: Any, status: int, code: str) -> dict[str, str]:
    text = await response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.headers["Content-Type"] == "application/json"
    return json_error(text, code)


async def upload_json(client: QuartClient, body: bytes, headers: dict[str, str]) -> Any:
    return await client.post("/upload", data=body, headers={**headers, **JSON})


def assert_only_tombstones_left(
    blob_dir: Path, redis_client: redis.Redis, share: dict[str, Any]
) -> None:
    """A downloaded share leaves no file, and in Redis only its tombstone and revoke pointer."""
    revoke_id = revoke_id_for(decode_token(share["revoke_url"].rsplit("/r/", 1)[1]))
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == sorted(
        [f"ots:gone:{share['id']}".encode(), f"ots:revoke:{revoke_id}".encode()]
    )


# --- file names ---------------------------------------------------------------------------


async def upload_named(client: QuartClient, filename: str, data: bytes) -> dict[str, Any]:
    body, headers = multipart(file=(filename, data))
    response = await upload_json(client, body, headers)
    text = await response.get_data(as_text=True)
    assert response.status_code == 201, text
    return json.loads(text)  # type: ignore[no-any-return]


async def download_name(client: QuartClient, share: dict[str, Any], data: bytes) -> str:
    """Download the share and return the exact name from Content-Disposition's filename*."""
    response = await client.post(token_path(share), headers=FORM)
    assert response.status_code == 200
    assert await response.get_data() == data
    assert "X-Injected" not in response.headers
    disposition = response.headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    match = DISPOSITION.fullmatch(disposition)
    assert match is not None, disposition
    return unquote(match["encoded"], encoding="utf-8", errors="strict")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\x.dll", "x.dll"),
        # Backslashes escaped as a quoted-string would have them: still only the last part.
        ("..\\\\..\\\\windows\\\\system32\\\\x.dll", "x.dll"),
        ("/etc/../etc/shadow", "shadow"),
    ],
)
async def test_path_traversal_names_keep_only_the_last_component(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis, raw: str, expected: str
) -> None:
    data = random_bytes(1000)
    share = await upload_named(client, raw, data)
    assert await download_name(client, share, data) == expected
    assert_only_tombstones_left(blob_dir, redis_client, share)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("re\x01po\x07rt\x1b.p\x7fdf", "report.pdf"),
        ("tab\tbed\x08.txt", "tabbed.txt"),
        # U+202E would show "invoice\u202etxt.exe" as "invoiceexe.txt".
        ("invoice\u202etxt.exe", "invoicetxt.exe"),
        ("\u202ercs.\u200bjpg\u2066", "rcs.jpg"),
    ],
)
async def test_control_and_bidi_characters_are_stripped(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis, raw: str, expected: str
) -> None:
    share = await upload_named(client, raw, b"x")
    assert await download_name(client, share, b"x") == expected
    assert_only_tombstones_left(blob_dir, redis_client, share)


@pytest.mark.parametrize(
    "raw",
    [
        "a" * 9996 + ".txt",
        "\u00e4" * 4998 + ".txt",  # 10 000 bytes of two-byte characters
    ],
)
async def test_a_10000_byte_name_is_stored_within_255_bytes(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis, raw: str
) -> None:
    assert len(raw.encode("utf-8")) == 10_000
    share = await upload_named(client, raw, b"long name")
    name = await download_name(client, share, b"long name")
    assert 0 < len(name.encode("utf-8")) <= 255
    assert name.endswith(".txt")
    assert raw.startswith(name.removesuffix(".txt"))
    assert_only_tombstones_left(blob_dir, redis_client, share)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a%0D%0AX-Injected: 1.txt", "a%0D%0AX-Injected: 1.txt"),
        ("%0D%0AX-Injected: 1", "%0D%0AX-Injected: 1"),
        # Escaped as a quoted-string allows, the name itself holds '";'.
        ('report\\";.pdf', 'report";.pdf'),
        ("x\\\"; filename*=UTF-8''evil.exe", "x\"; filename*=UTF-8''evil.exe"),
        # Unescaped, the quote ends the multipart parameter; what is left is just a name.
        ('evil";X-Injected: 1.txt', "evil"),
    ],
)
async def test_header_injection_in_names_stays_inside_filename_star(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis, raw: str, expected: str
) -> None:
    share = await upload_named(client, raw, b"payload")
    response = await client.post(token_path(share), headers=FORM)
    assert response.status_code == 200
    assert "X-Injected" not in response.headers
    assert len(response.headers.getlist("Content-Disposition")) == 1
    disposition = response.headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    match = DISPOSITION.fullmatch(disposition)
    assert match is not None, disposition
    assert unquote(match["encoded"]) == expected
    assert "%" not in match["fallback"] and ";" not in match["fallback"]
    if "%0D%0A" in expected:
        assert "%250D%250AX-Injected%3A%201" in match["encoded"]
    assert_only_tombstones_left(blob_dir, redis_client, share)


@pytest.mark.parametrize("raw", [".", "..", "...", ". . .", "../..", "..\\.."])
async def test_names_of_only_dots_are_stored_as_download(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis, raw: str
) -> None:
    share = await upload_named(client, raw, b"dots")
    assert await download_name(client, share, b"dots") == "download"
    assert_only_tombstones_left(blob_dir, redis_client, share)


# --- markup in names and messages -------------------------------------------------------


async def test_markup_in_a_file_name_is_escaped_on_the_landing_page(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    name = "<img src=x onerror=alert(1)>.html"
    share = await upload_named(client, name, b"<p>harmless</p>")

    landing = await client.get(token_path(share))
    assert landing.status_code == 200
    page = await landing.get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;.html" in page
    assert "<img src=x" not in page
    assert "onerror=alert(1)>" not in page

    download = await client.post(token_path(share), headers=FORM)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert await download.get_data() == b"<p>harmless</p>"
    assert_only_tombstones_left(blob_dir, redis_client, share)


async def test_markup_in_a_text_secret_is_escaped_when_revealed(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    secret = "<script>alert(1)</script>"
    body, headers = multipart({"text": secret})
    response = await upload_json(client, body, headers)
    assert response.status_code == 201
    share = await response.get_json()

    landing = await client.get(token_path(share))
    assert landing.status_code == 200
    landing_page = await landing.get_data(as_text=True)
    assert "<script>alert(1)" not in landing_page
    assert "alert(1)" not in landing_page  # the landing page never shows the message

    reveal = await client.post(token_path(share), headers=FORM)
    assert reveal.status_code == 200
    page = await reveal.get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    assert_only_tombstones_left(blob_dir, redis_client, share)


# --- broken and lying bodies ------------------------------------------------------------


async def test_multipart_without_closing_boundary_is_400(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    body, headers = multipart({"expires_in": "3600"}, ("a.bin", random_bytes(200_000)), close=False)
    response = await upload_json(client, body, headers)
    error = await checked_json_error(response, 400, "malformed_request")
    assert "closing boundary" in error["error"]
    assert_nothing_left(blob_dir, redis_client)


def test_body_longer_than_its_content_length_is_400_and_leaves_nothing(
    live_server: LiveServer, redis_client: redis.Redis
) -> None:
    body, _ = multipart(file=("a.bin", random_bytes(300_000)))
    declared = len(body) - 5000  # the declared body stops inside the file, before the close
    assert f"--{BOUNDARY}--".encode() not in body[:declared]
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=20) as connection:
        connection.sendall(upload_head(declared) + body)
        status, headers, answer = read_one_response(connection)
    assert status == 400
    assert headers["content-type"] == "application/json"
    error = json_error(answer.decode(), "malformed_request")
    assert "closing boundary" in error["error"]
    assert_nothing_left(live_server.settings.blob_dir, redis_client)


def test_declared_length_over_the_limit_is_413_before_any_body(
    live_server: LiveServer, settings: Settings, redis_client: redis.Redis
) -> None:
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=20) as connection:
        # One byte over the file limit plus the 64 KiB allowed for the form's other fields.
        connection.sendall(upload_head(settings.max_upload_bytes + 64 * 1024 + 1))
        status, headers, answer = read_one_response(connection)
    assert status == 413
    error = json_error(answer.decode(), "too_large")
    assert "at most 8 MiB" in error["error"]
    assert int(headers["content-length"]) == len(answer)
    assert_nothing_left(live_server.settings.blob_dir, redis_client)


async def test_password_of_one_mebibyte_is_422(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    body, headers = multipart({"password": "p" * MIB}, ("a.txt", b"abc"))
    response = await upload_json(client, body, headers)
    error = await checked_json_error(response, 422, "invalid_input")
    assert "password" in error["error"]
    assert_nothing_left(blob_dir, redis_client)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/json",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "multipart/mixed; boundary=abc",
    ],
)
async def test_non_multipart_content_type_is_400(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis, content_type: str
) -> None:
    body, _ = multipart(file=("a.txt", b"abc"))
    response = await client.post(
        "/upload", data=body, headers={"Content-Type": content_type, **JSON}
    )
    error = await checked_json_error(response, 400, "malformed_request")
    assert "multipart/form-data" in error["error"]
    assert_nothing_left(blob_dir, redis_client)


def test_a_body_refused_mid_stream_does_not_leave_the_client_hanging(
    live_server_factory: LiveServerFactory, redis_client: redis.Redis
) -> None:
    """After answering early (here 413 for a chunked body far over the limit), the server must
    either read and discard the rest of the body or close the connection. Most clients send the
    whole body before they read, so a connection that is neither read nor closed hangs them
    and never shows them the answer."""
    server = live_server_factory(workers=1)
    head = (
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part_head, _ = multipart(file=("huge.bin", b""), close=False)
    piece = bytes(MIB)
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    outcome: list[str] = []

    def send_everything() -> None:
        try:
            connection.sendall(head + b"%x\r\n%b\r\n" % (len(part_head), part_head))
            for _ in range(128):  # 128 MiB of file data, far over the 8 MiB limit
                connection.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
            connection.sendall(b"0\r\n\r\n")
            outcome.append("sent")
        except OSError as error:
            outcome.append(f"closed: {error!r}")

    sender = threading.Thread(target=send_everything, daemon=True)
    sender.start()
    try:
        status, _, answer = read_one_response(connection)
        assert status == 413
        json_error(answer.decode(), "too_large")
        assert_nothing_left(server.settings.blob_dir, redis_client)
        try:
            wait_until(lambda: not sender.is_alive(), timeout=5, interval=0.05)
        except AssertionError:
            raise AssertionError(
                "after answering, the server neither read the rest of the body nor closed "
                "the connection: the client is stuck sending"
            ) from None
        assert outcome, "the sender ended without a result"
    finally:
        with contextlib.suppress(OSError):  # already closed by the server, if all went well
            connection.shutdown(socket.SHUT_RDWR)  # unblocks the sender if it is stuck
        connection.close()
        sender.join(timeout=10)
        # A stalled connection also holds up a graceful stop for its whole timeout.
        server.kill()


# --- malformed tokens -------------------------------------------------------------------


def non_canonical(token_text: str) -> str:
    """The same 32 bytes with the two unused low bits of the last character set."""
    last = BASE64URL_ALPHABET.index(token_text[-1])
    return token_text[:-1] + BASE64URL_ALPHABET[last | 0b01]


def bad_tokens() -> list[tuple[str, str]]:
    valid = encode_token(new_token())
    return [
        ("42 characters", valid[:42]),
        ("44 characters", valid + "A"),
        ("plus", valid[:20] + "+" + valid[21:]),
        ("slash", valid[:20] + "/" + valid[21:]),
        ("equals", valid[:42] + "="),
        ("non-canonical", non_canonical(valid)),
        ("NUL", valid[:42] + "%00"),
    ]


def test_the_non_canonical_token_names_the_same_bytes() -> None:
    valid = encode_token(new_token())
    changed = non_canonical(valid)
    assert changed != valid and len(changed) == 43
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", changed)
    assert base64.urlsafe_b64decode(changed + "=") == base64.urlsafe_b64decode(valid + "=")
    with pytest.raises(InvalidToken):
        decode_token(changed)


@pytest.mark.parametrize("prefix", ["/d/", "/r/"])
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(("label", "token"), bad_tokens(), ids=[case[0] for case in bad_tokens()])
async def test_malformed_tokens_are_404(
    client: QuartClient,
    blob_dir: Path,
    redis_client: redis.Redis,
    prefix: str,
    method: str,
    label: str,
    token: str,
) -> None:
    form = FORM if method == "POST" else {}
    response = await client.open(prefix + token, method=method, headers={**JSON, **form})
    await checked_json_error(response, 404, "not_found")

    page = await client.open(prefix + token, method=method, headers={**HTML, **form})
    assert page.status_code == 404
    assert page.headers["Content-Type"].startswith("text/html")
    assert_no_traceback(await page.get_data(as_text=True))
    assert_nothing_left(blob_dir, redis_client)


# --- methods, addresses and headers ------------------------------------------------------


async def test_get_with_a_body_is_400(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    response = await client.get(
        "/", data=b"hello", headers={**JSON, "Content-Length": "5", "Content-Type": "text/plain"}
    )
    await checked_json_error(response, 400, "unexpected_body")
    assert_nothing_left(blob_dir, redis_client)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_on_upload_are_405(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis, method: str
) -> None:
    response = await client.open("/upload", method=method, headers=JSON)
    await checked_json_error(response, 405, "method_not_allowed")

    page = await client.open("/upload", method=method, headers=HTML)
    assert page.status_code == 405
    assert page.headers["Content-Type"].startswith("text/html")
    text = await page.get_data(as_text=True)
    assert "Method not allowed" in text
    assert_no_traceback(text)
    assert_nothing_left(blob_dir, redis_client)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_405_names_the_allowed_methods(client: QuartClient, method: str) -> None:
    # RFC 9110 section 15.5.6: a 405 response MUST carry an Allow header.
    response = await client.open("/upload", method=method, headers=JSON)
    assert response.status_code == 405
    assert "POST" in {part.strip() for part in response.headers.get("Allow", "").split(",")}


async def test_a_3000_byte_path_is_414(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    response = await client.get("/d/" + "A" * 3000, headers=JSON)
    await checked_json_error(response, 414, "uri_too_long")
    page = await client.get("/d/" + "A" * 3000, headers=HTML)
    assert page.status_code == 414
    assert_no_traceback(await page.get_data(as_text=True))
    assert_nothing_left(blob_dir, redis_client)


@pytest.mark.parametrize(
    "complete",
    [
        pytest.param(True, id="whole-header-block-at-once"),
        pytest.param(False, id="header-block-still-arriving"),
    ],
)
def test_headers_over_16_kib_are_431(
    live_server: LiveServer, redis_client: redis.Redis, complete: bool
) -> None:
    """20 KiB of headers, sent whole (with the blank line that ends them) or still arriving.

    Hypercorn's 16 KiB limit (h11_max_incomplete_size) only counts a header block that
    has not ended yet; a whole block that arrives in one read must be refused as well.
    """
    filler = "".join(f"X-Filler-{index}: {'v' * 1000}\r\n" for index in range(20))
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{filler}"
    if complete:
        request += "\r\n"
    assert len(request) > 16 * 1024
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=20) as connection:
        connection.sendall(request.encode())
        status, _, answer = read_one_response(connection)
    assert status == 431
    assert_no_traceback(answer.decode("latin-1"))
    assert_nothing_left(live_server.settings.blob_dir, redis_client)
