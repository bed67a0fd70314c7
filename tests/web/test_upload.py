"""POST /upload: the streaming upload, its answers, and what it leaves on disk and in Redis."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import pytest
import redis
from markupsafe import escape
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.domain.crypto import decode_token, share_id_for
from onetimeshare.web.app import create_app
from tests.helpers import (
    HTMX,
    JSON,
    LOAD_DELAY,
    UPLOAD_ID,
    assert_fragment,
    assert_full_page,
    client_with,
    files_in,
    markup,
    multipart,
    post_form,
    random_bytes,
    running_app,
    secret_text,
    share_keys,
    token_path,
    upload,
    upload_text,
)


def all_redis_bytes(client: redis.Redis) -> bytes:
    """Every key and value in Redis, concatenated, to search for secrets."""
    dump = bytearray()
    for key in client.scan_iter():
        dump += key
        kind = client.type(key)
        if kind == b"hash":
            for field, value in client.hgetall(key).items():
                dump += field + value
        elif kind == b"string":
            dump += client.get(key) or b""
    return bytes(dump)


async def test_json_upload_answers_201_with_link_and_facts(
    client: QuartClient, settings: Settings
) -> None:
    before = time.time()
    share = await upload(client, b"hello world", filename="hello.txt")

    assert set(share) == {"url", "revoke_url", "id", "expires_at", "size", "protected"}
    assert share["revoke_url"].startswith("http://localhost/r/")
    revoke_token = share["revoke_url"].rsplit("/", 1)[1]
    assert revoke_token != share["url"].rsplit("/", 1)[1]
    assert share["url"].startswith("http://localhost/d/")
    token = decode_token(share["url"].rsplit("/", 1)[1])
    assert share["id"] == share_id_for(token)
    assert share["size"] == 11
    assert share["protected"] is False
    assert before + settings.default_expiry - 1 <= share["expires_at"] <= time.time() + 86400


async def test_public_url_setting_builds_the_link(settings: Settings) -> None:
    app = create_app(dataclasses.replace(settings, public_url="https://share.example.org"))
    async with app.test_app():
        share = await upload(app.test_client(), b"x")
    assert share["url"].startswith("https://share.example.org/d/")


async def test_html_form_upload_shows_the_link_and_is_not_cached(
    client: QuartClient,
) -> None:
    body, headers = multipart({"expires_in": "3600"}, ("notes.txt", b"some notes"))
    response = await client.post("/upload", data=body, headers=headers)

    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    page = await response.get_data(as_text=True)
    assert "Your link is ready" in page
    assert 'value="http://localhost/d/' in page


async def test_blob_holds_only_ciphertext_and_redis_holds_no_secret(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    marker = b"PLAINTEXT-MARKER-" * 4096
    share = await upload(client, marker, filename="very-secret-name.env", password="pw-secret")

    files = files_in(blob_dir)
    assert files == [f"{share['id']}.blob"]
    blob = (blob_dir / files[0]).read_bytes()
    assert b"PLAINTEXT-MARKER" not in blob
    dump = all_redis_bytes(redis_client)
    token = share["url"].rsplit("/", 1)[1]
    for secret in (token.encode(), b"very-secret-name", b"pw-secret", b"PLAINTEXT-MARKER"):
        assert secret not in dump
    assert share["id"].encode() in dump  # the derived id names the keys


async def test_fields_may_come_after_the_file(client: QuartClient) -> None:
    body, headers = multipart(
        {"password": "later", "expires_in": "300"}, ("a.txt", b"abc"), file_first=True
    )
    assert body.index(b'name="file"') < body.index(b'name="password"')
    response = await client.post("/upload", data=body, headers={**headers, **JSON})
    assert response.status_code == 201, await response.get_data(as_text=True)
    share = await response.get_json()
    assert share["protected"] is True
    assert share["expires_at"] == pytest.approx(time.time() + 300, abs=5)


@pytest.mark.parametrize(
    ("fields", "file", "status", "message"),
    [
        ({"expires_in": "soon"}, ("a.txt", b"x"), 422, "expiry"),
        ({"expires_in": "12345"}, ("a.txt", b"x"), 422, "expiry"),
        ({"password": "p" * 1025}, ("a.txt", b"x"), 422, "1024 bytes"),
        ({"expires_in": "300"}, None, 422, "Choose a file"),
        ({}, ("", b""), 422, "Choose a file"),
    ],
)
async def test_bad_forms_get_422_and_leave_nothing(
    client: QuartClient,
    blob_dir: Path,
    redis_client: redis.Redis,
    fields: dict[str, str],
    file: tuple[str, bytes] | None,
    status: int,
    message: str,
) -> None:
    body, headers = multipart(fields, file)
    response = await client.post("/upload", data=body, headers={**headers, **JSON})

    assert response.status_code == status
    payload = await response.get_json()
    assert message in payload["error"]
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == []


async def test_bad_form_in_a_browser_shows_the_form_again_with_the_error(
    client: QuartClient,
) -> None:
    body, headers = multipart({"expires_in": "soon", "password": "pw"}, ("a.txt", b"x"))
    response = await client.post("/upload", data=body, headers=headers)
    assert response.status_code == 422
    page = await response.get_data(as_text=True)
    assert '<p class="form-error" role="alert" id="form-error">Choose one of the offered' in page
    assert 'name="file" type="file"' in page
    assert 'value="pw"' not in page  # passwords are never written back into a page
    assert "Traceback" not in page


async def test_a_second_file_part_is_refused(client: QuartClient, blob_dir: Path) -> None:
    first, headers = multipart(file=("a.txt", b"a"), close=False)
    second, _ = multipart(file=("b.txt", b"b"))
    response = await client.post("/upload", data=first + second, headers={**headers, **JSON})
    assert response.status_code == 422
    assert files_in(blob_dir) == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"file=abc", "application/x-www-form-urlencoded"),
        (b"{}", "application/json"),
        (b"--x\r\nnot really multipart", "multipart/form-data"),  # no boundary parameter
    ],
)
async def test_non_multipart_bodies_get_400(
    client: QuartClient, body: bytes, content_type: str
) -> None:
    response = await client.post(
        "/upload", data=body, headers={"Content-Type": content_type, **JSON}
    )
    assert response.status_code == 400
    assert "multipart/form-data" in (await response.get_json())["error"]


async def test_multipart_without_closing_boundary_gets_400_and_leaves_nothing(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    body, headers = multipart(file=("a.bin", random_bytes(300_000)), close=False)
    response = await client.post("/upload", data=body, headers={**headers, **JSON})

    assert response.status_code == 400
    assert "closing boundary" in (await response.get_json())["error"]
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == []


async def test_file_over_the_limit_gets_413_and_leaves_nothing(
    client: QuartClient, settings: Settings, blob_dir: Path, redis_client: redis.Redis
) -> None:
    body, headers = multipart(file=("big.bin", random_bytes(settings.max_upload_bytes + 1)))
    response = await client.post("/upload", data=body, headers={**headers, **JSON})

    assert response.status_code == 413
    assert "at most 8 MiB" in (await response.get_json())["error"]
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == []


async def test_file_exactly_at_the_limit_is_accepted(
    client: QuartClient, settings: Settings
) -> None:
    share = await upload(client, random_bytes(settings.max_upload_bytes))
    assert share["size"] == settings.max_upload_bytes


async def test_low_disk_space_gets_507_and_leaves_nothing(
    settings: Settings, redis_client: redis.Redis
) -> None:
    cramped = dataclasses.replace(settings, min_free_bytes=2**62)
    app = create_app(cramped)
    async with app.test_app():
        body, headers = multipart(file=("a.txt", b"abc"))
        response = await app.test_client().post("/upload", data=body, headers={**headers, **JSON})
    assert response.status_code == 507
    assert "disk space" in (await response.get_json())["error"]
    assert files_in(cramped.blob_dir) == []
    assert share_keys(redis_client) == []


async def test_empty_file_is_a_valid_share(client: QuartClient) -> None:
    share = await upload(client, b"", filename="empty.txt")
    response = await client.post(token_path(share))
    assert response.status_code == 200
    assert await response.get_data() == b""
    assert response.headers["Content-Length"] == "0"


async def test_client_disconnect_mid_upload_leaves_nothing(
    app: object, client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    body, headers = multipart(file=("a.bin", random_bytes(3 * 1024 * 1024)))
    async with client.request(
        "/upload", method="POST", headers={**headers, "Content-Length": str(len(body)), **JSON}
    ) as connection:
        await connection.send(body[: 2 * 1024 * 1024])
        await connection.disconnect()
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == []


# A file limit far below the text limit: a text is held to the text limit alone.
SMALL_FILES = {"max_upload_bytes": 1024, "max_text_bytes": 200_000}


@pytest.mark.parametrize("size", [2_000, 150_000])  # past the file limit; past it + the form
async def test_a_text_larger_than_the_file_limit_is_a_valid_share(
    settings: Settings, size: int
) -> None:
    text = ("A line of a long secret.\n" * (size // 25 + 1))[:size]
    async with running_app(dataclasses.replace(settings, **SMALL_FILES)) as application:
        client = application.test_client()
        body, headers = multipart({"text": text})
        response = await client.post("/upload", data=body, headers={**headers, **JSON})
        assert response.status_code == 201, await response.get_data(as_text=True)
        share = await response.get_json()
        assert share["size"] == size
        revealed = await client.post(token_path(share))
        assert revealed.status_code == 200
        assert text in await revealed.get_data(as_text=True)


async def test_a_text_over_the_text_limit_is_422_with_the_text_message(
    settings: Settings, blob_dir: Path, redis_client: redis.Redis
) -> None:
    async with running_app(dataclasses.replace(settings, **SMALL_FILES)) as application:
        body, headers = multipart({"text": "x" * 210_000})
        response = await application.test_client().post(
            "/upload", data=body, headers={**headers, **JSON}
        )
    assert response.status_code == 422
    error = await response.get_json()
    assert error["code"] == "invalid_input"
    assert "“text” is longer than 200000 bytes" in error["error"]
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == []


# --- the created page ----------------------------------------------------------------------


async def test_created_page_has_no_inline_code_and_a_qr_code(client: QuartClient) -> None:
    body, headers = multipart({"expires_in": "300"}, ("notes.txt", b"some notes"))
    response = await client.post("/upload", data=body, headers=headers)
    assert response.status_code == 201
    text = await markup(response)
    assert_full_page(text)
    assert '<svg role="img"' in text
    assert response.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in response.headers["Vary"]


async def test_htmx_upload_answers_with_the_created_fragment(client: QuartClient) -> None:
    body, headers = multipart({"expires_in": "300"}, ("notes.txt", b"some notes"))
    response = await client.post("/upload", data=body, headers={**headers, **HTMX})
    assert response.status_code == 201
    text = await markup(response)
    assert_fragment(text)
    assert "Your link is ready" in text
    assert 'value="http://localhost/d/' in text
    assert 'href="http://localhost/r/' in text
    assert response.headers["Cache-Control"] == "no-store"


# --- text messages -------------------------------------------------------------------------


async def test_text_field_creates_a_text_share(
    client: QuartClient, redis_client: redis.Redis, blob_dir: Path
) -> None:
    share = await upload_text(client, "Grüße\r\nline two\r\n")
    assert share["size"] == len("Grüße\nline two\n".encode())
    assert share["protected"] is False
    assert redis_client.hget(f"ots:share:{share['id']}", "kind") == b"text"
    assert files_in(blob_dir) == [f"{share['id']}.blob"]

    revealed = await post_form(client, token_path(share))
    assert revealed.status_code == 200
    assert secret_text(await markup(revealed)) == "Grüße\nline two\n"


async def test_text_over_the_limit_is_422_and_leaves_nothing(
    settings: Settings, blob_dir: Path, redis_client: redis.Redis
) -> None:
    async with client_with(settings, max_text_bytes=64) as client:
        exact = await upload_text(client, "é" * 32)  # 64 bytes, 32 characters
        assert exact["size"] == 64
        assert (await post_form(client, token_path(exact))).status_code == 200
        redis_client.flushdb()

        body, headers = multipart({"expires_in": "300", "text": "é" * 32 + "!"})
        response = await client.post("/upload", data=body, headers={**headers, **JSON})
        assert response.status_code == 422
        assert "64 bytes" in (await response.get_json())["error"]
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == []


async def test_file_and_text_together_are_422_and_leave_nothing(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    body, headers = multipart({"text": "a message"}, ("a.txt", b"a file"))
    response = await client.post("/upload", data=body, headers={**headers, **JSON})
    assert response.status_code == 422
    assert "either a file or a text" in (await response.get_json())["error"]
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == []


# --- upload progress -----------------------------------------------------------------------


async def test_progress_of_an_unknown_upload_waits_and_polls(client: QuartClient) -> None:
    response = await client.get(f"/upload/progress/{UPLOAD_ID}", headers=HTMX)
    assert response.status_code == 200
    text = await markup(response)
    assert "Waiting for the upload to start" in text
    assert f'hx-get="/upload/progress/{UPLOAD_ID}"' in text
    assert LOAD_DELAY.search(text) is not None, text


async def test_progress_after_a_stored_upload_is_final_and_holds_no_secret(
    client: QuartClient, redis_client: redis.Redis
) -> None:
    body, headers = multipart(
        {"upload_id": UPLOAD_ID, "expires_in": "300"}, ("very-secret-name.env", b"A=1\n" * 1000)
    )
    assert body.index(b'name="upload_id"') < body.index(b'name="file"')
    response = await client.post("/upload", data=body, headers={**headers, **JSON})
    assert response.status_code == 201
    share = await response.get_json()

    text = await markup(await client.get(f"/upload/progress/{UPLOAD_ID}", headers=HTMX))
    assert "Encrypted and stored." in text
    assert "hx-trigger" not in text

    key = f"ots:progress:{UPLOAD_ID}"
    fields = redis_client.hgetall(key)
    assert fields[b"phase"] == b"stored"
    assert set(fields) <= {b"phase", b"received", b"expected", b"message"}
    values = b"".join(fields.values())
    token = share["url"].rsplit("/", 1)[1].encode()
    revoke_token = share["revoke_url"].rsplit("/", 1)[1].encode()
    for secret in (b"very-secret-name", token, revoke_token, share["id"].encode()):
        assert secret not in values
    assert 0 < redis_client.ttl(key) <= 15 * 60


async def test_progress_of_a_failed_upload_shows_the_message(
    client: QuartClient, redis_client: redis.Redis
) -> None:
    body, headers = multipart({"upload_id": UPLOAD_ID, "expires_in": "soon"}, ("a.txt", b"x"))
    response = await client.post("/upload", data=body, headers={**headers, **JSON})
    assert response.status_code == 422

    text = await markup(await client.get(f"/upload/progress/{UPLOAD_ID}", headers=HTMX))
    assert "Upload failed" in text
    assert "Choose one of the offered expiry times." in text
    assert "hx-trigger" not in text
    assert set(redis_client.hgetall(f"ots:progress:{UPLOAD_ID}")) <= {
        b"phase",
        b"received",
        b"expected",
        b"message",
    }


async def test_progress_of_an_upload_refused_for_an_overlong_field_is_final(
    client: QuartClient,
) -> None:
    body, headers = multipart(
        {"upload_id": UPLOAD_ID, "expires_in": "300", "password": "p" * 1025}, ("a.txt", b"x")
    )
    response = await client.post("/upload", data=body, headers={**headers, **JSON})
    assert response.status_code == 422

    text = await markup(await client.get(f"/upload/progress/{UPLOAD_ID}", headers=HTMX))
    assert "Upload failed" in text, "the progress fragment keeps waiting for a refused upload"
    assert "1024 bytes" in text
    assert "hx-trigger" not in text


@pytest.mark.parametrize("upload_id", ["short", "A" * 21, "A" * 23, "A" * 21 + "!", "A" * 21 + "."])
async def test_progress_of_a_malformed_id_is_404(client: QuartClient, upload_id: str) -> None:
    assert (await client.get(f"/upload/progress/{upload_id}")).status_code == 404
    assert (await client.get(f"/upload/progress/{upload_id}", headers=HTMX)).status_code == 404


# --- form errors in a browser --------------------------------------------------------------


def selected_expiry(page: str) -> list[str]:
    return re.findall(r'<option value="(\d+)" selected>', page)


async def test_too_large_file_in_a_browser_shows_the_form_again(
    settings: Settings, blob_dir: Path, redis_client: redis.Redis
) -> None:
    async with client_with(settings, max_upload_bytes=1024) as client:
        body, headers = multipart({"expires_in": "300"}, ("big.bin", b"x" * 2000))
        response = await client.post("/upload", data=body, headers=headers)
        assert response.status_code == 413
        assert response.headers["Cache-Control"] == "no-store"
        page = await markup(response)
    assert_full_page(page)
    assert '<p class="form-error" role="alert" id="form-error">Files can be at most 1 KiB.' in page
    assert selected_expiry(page) == ["300"]
    assert 'name="file" type="file"' in page
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == []


async def test_bad_password_in_a_browser_keeps_the_expiry(client: QuartClient) -> None:
    body, headers = multipart({"expires_in": "3600", "password": "p" * 1025}, ("a.txt", b"x"))
    response = await client.post("/upload", data=body, headers=headers)
    assert response.status_code == 422
    page = await markup(response)
    assert re.search(r'class="form-error"[^>]*>[^<]*1024 bytes', page)
    assert selected_expiry(page) == ["3600"]


async def test_htmx_form_error_is_the_form_fragment(client: QuartClient) -> None:
    body, headers = multipart({"expires_in": "3600", "text": "both"}, ("a.txt", b"x"))
    response = await client.post("/upload", data=body, headers={**headers, **HTMX})
    assert response.status_code == 422
    text = await markup(response)
    assert_fragment(text)
    assert 'class="form-error"' in text
    assert selected_expiry(text) == ["3600"]


async def test_text_form_error_keeps_the_typed_text(client: QuartClient) -> None:
    typed = 'my <b>note</b> & "more"\r\nsecond line'
    body, headers = multipart({"expires_in": "3600", "text": typed}, ("a.txt", b"x"))
    response = await client.post("/upload", data=body, headers=headers)
    assert response.status_code == 422
    page = await markup(response)
    assert re.search(r'class="form-error"[^>]*>Send either a file or a text message', page)
    assert selected_expiry(page) == ["3600"]
    textarea = re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.DOTALL)
    assert textarea is not None
    assert textarea.group(1) == str(escape(typed.replace("\r\n", "\n")))
    assert "<b>note</b>" not in page


async def test_text_too_long_in_a_browser_shows_the_text_form_again(settings: Settings) -> None:
    async with client_with(settings, max_text_bytes=64) as client:
        # The form's field order: upload_id, mode, expires_in, password, text.
        body, headers = multipart(
            {
                "upload_id": UPLOAD_ID,
                "mode": "text",
                "expires_in": "300",
                "password": "",
                "text": "ü" * 40,
            }
        )
        response = await client.post("/upload", data=body, headers=headers)
        assert response.status_code == 422
        page = await markup(response)
    assert 'class="form-error"' in page
    assert "64 bytes" in page
    assert '<textarea id="text" name="text"' in page, "the text form became the file form"
    assert 'name="file" type="file"' not in page
    assert selected_expiry(page) == ["300"]


async def test_early_field_error_in_text_mode_keeps_the_text(client: QuartClient) -> None:
    # A browser counts maxlength in characters: 600 umlauts pass it but are 1200 bytes.
    body, headers = multipart(
        {
            "upload_id": UPLOAD_ID,
            "mode": "text",
            "expires_in": "3600",
            "password": "ü" * 600,
            "text": "typed",
        }
    )
    response = await client.post("/upload", data=body, headers=headers)
    assert response.status_code == 422
    page = await markup(response)
    assert re.search(r'class="form-error"[^>]*>[^<]*1024 bytes', page)
    textarea = re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.DOTALL)
    assert textarea is not None, "the text form became the file form"
    assert textarea.group(1) == "typed"
    assert selected_expiry(page) == ["3600"]
