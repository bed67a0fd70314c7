"""The server side of the htmx experience: pages and fragments, the htmx configuration,
security headers, text secrets, unlock, countdowns, revoke links and upload progress."""

from __future__ import annotations

import contextlib
import dataclasses
import html
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import redis
from markupsafe import escape
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.domain.crypto import encode_token, new_token
from tests.conftest import SHORT_EXPIRY
from tests.helpers import (
    JSON,
    multipart,
    running_app,
    share_keys,
    token_path,
    upload,
    wait_until_async,
)

UNLOCK_INPUT = re.compile(r'<input type="hidden" name="unlock" value="([A-Za-z0-9_-]{43})">')
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
HTMX = {"HX-Request": "true"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
UPLOAD_ID = "AbCdEfGhIjKlMnOpQr_-12"  # well formed: 22 url-safe characters

TAG = re.compile(r"<[A-Za-z][^>]*>")
INLINE_STYLE = re.compile(r"\sstyle\s*=", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
HTMX_HANDLER = re.compile(r"\shx-on", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\ssrc\s*=)[^>]*>", re.IGNORECASE)
HTMX_CONFIG = re.compile(r"<meta name=\"htmx-config\" content='([^']*)'>")
LOAD_DELAY = re.compile(r'hx-trigger="load delay:(\d+)(m?s)\b')


# --- helpers ---------------------------------------------------------------------------


async def markup(response: Any) -> str:
    """The body of an HTML answer, checked for anything the strict CSP would block."""
    assert response.content_type.startswith("text/html"), response.content_type
    text: str = await response.get_data(as_text=True)
    for tag in TAG.findall(text):
        assert not INLINE_STYLE.search(tag), f"inline style attribute in {tag!r}"
        assert not EVENT_HANDLER.search(tag), f"inline event handler in {tag!r}"
        assert not HTMX_HANDLER.search(tag), f"hx-on handler in {tag!r}"
    assert not INLINE_SCRIPT.search(text), "inline <script> without src"
    return text


def assert_full_page(text: str) -> None:
    assert "<!doctype html>" in text
    assert 'name="htmx-config"' in text
    assert "<head" in text


def assert_fragment(text: str) -> None:
    assert "<html" not in text
    assert "<head" not in text
    assert "<!doctype" not in text.lower()
    assert "htmx-config" not in text
    assert text.strip(), "an empty fragment"


def assert_no_polling(text: str) -> None:
    assert "hx-trigger" not in text
    assert "hx-get" not in text


def assert_only_tombstone(client: redis.Redis, share: dict[str, Any], reason: bytes) -> None:
    """No record (so no key material) and no upload mark: the tombstone saying why, and the
    revoke pointer (just the share id), which expires with the tombstone."""
    keys = share_keys(client)
    assert [key for key in keys if share["id"].encode() in key] == [
        f"ots:gone:{share['id']}".encode()
    ]
    assert not [key for key in keys if key.startswith((b"ots:share:", b"ots:upload:"))]
    assert client.get(f"ots:gone:{share['id']}") == reason
    tombstone_ttl = client.ttl(f"ots:gone:{share['id']}")
    pointers = [key for key in keys if key.startswith(b"ots:revoke:")]
    for pointer in pointers:
        if client.get(pointer) == share["id"].encode():
            assert 0 < client.ttl(pointer) <= tombstone_ttl


def revoke_path(share: dict[str, Any]) -> str:
    return "/r/" + share["revoke_url"].rsplit("/r/", 1)[1]


def stored_files(blob_dir: Path) -> list[str]:
    return sorted(path.name for path in blob_dir.iterdir()) if blob_dir.exists() else []


async def post_form(
    client: QuartClient,
    path: str,
    password: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    body = f"password={quote(password)}" if password is not None else ""
    return await client.post(path, data=body, headers={**FORM, **(headers or {})})


async def upload_text(
    client: QuartClient,
    text: str,
    *,
    password: str | None = None,
    expires_in: int | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    fields = {"text": text}
    if password is not None:
        fields["password"] = password
    if expires_in is not None:
        fields["expires_in"] = str(expires_in)
    body, headers = multipart(fields)
    response = await client.post("/upload", data=body, headers={**headers, **JSON})
    assert response.status_code == expect, await response.get_data(as_text=True)
    return await response.get_json()  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def client_with(settings: Settings, **overrides: Any) -> AsyncIterator[QuartClient]:
    """A client of an app with changed settings (do not combine with the ``client`` fixture)."""
    async with running_app(dataclasses.replace(settings, **overrides)) as application:
        yield application.test_client()


def secret_text(page: str) -> str:
    match = re.search(r'<pre class="secret"[^>]*>(.*?)</pre>', page, re.DOTALL)
    assert match is not None, 'no <pre class="secret"> in the page'
    return match.group(1)


def htmx_config(page: str) -> dict[str, Any]:
    match = HTMX_CONFIG.search(page)
    assert match is not None, "no htmx-config meta tag"
    return json.loads(html.unescape(match.group(1)))  # type: ignore[no-any-return]


def selected_expiry(page: str) -> list[str]:
    return re.findall(r'<option value="(\d+)" selected>', page)


# --- 1. pages and fragments --------------------------------------------------------------

PAGES = ["home", "home_text", "landing", "status", "revoke", "progress"]
SHOWS_A_SHARE = {"landing", "status", "revoke", "progress"}


async def path_of(client: QuartClient, name: str) -> str:
    if name == "home":
        return "/"
    if name == "home_text":
        return "/?mode=text"
    if name == "progress":
        return f"/upload/progress/{UPLOAD_ID}"
    share = await upload(client, b"page or fragment", filename="notes.txt")
    return {
        "landing": token_path(share),
        "status": token_path(share) + "/status",
        "revoke": revoke_path(share),
    }[name]


@pytest.mark.parametrize("name", PAGES)
async def test_without_htmx_header_a_full_page(client: QuartClient, name: str) -> None:
    response = await client.get(await path_of(client, name))
    assert response.status_code == 200
    assert_full_page(await markup(response))
    assert "HX-Request" in response.headers["Vary"]
    if name in SHOWS_A_SHARE:
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("name", PAGES)
async def test_with_htmx_header_only_the_fragment(client: QuartClient, name: str) -> None:
    response = await client.get(await path_of(client, name), headers=HTMX)
    assert response.status_code == 200
    text = await markup(response)
    assert_fragment(text)
    assert "HX-Request" in response.headers["Vary"]
    if name in SHOWS_A_SHARE:
        assert response.headers["Cache-Control"] == "no-store"
    expected_root = {
        "status": "data-countdown",
        "progress": "data-upload-status",
    }.get(name, 'id="share-panel"')
    assert expected_root in text


async def test_text_mode_fragment_is_the_text_form(client: QuartClient) -> None:
    text_form = await markup(await client.get("/?mode=text", headers=HTMX))
    file_form = await markup(await client.get("/", headers=HTMX))
    assert '<textarea id="text" name="text"' in text_form
    assert 'type="file"' not in text_form
    assert 'name="file" type="file"' in file_form
    assert "<textarea" not in file_form
    # An unknown mode falls back to the file form rather than failing.
    other = await client.get("/?mode=video")
    assert other.status_code == 200
    assert 'name="file" type="file"' in await markup(other)


# --- 2. the htmx configuration ------------------------------------------------------------


@pytest.mark.parametrize("name", ["home", "landing"])
async def test_htmx_meta_config_is_json_with_the_safe_settings(
    client: QuartClient, name: str
) -> None:
    page = await markup(await client.get(await path_of(client, name)))
    config = htmx_config(page)

    assert config["allowEval"] is False
    assert config["includeIndicatorStyles"] is False
    assert config["historyRestoreAsHxRequest"] is False
    assert config["historyCacheSize"] == 0
    handling = config["responseHandling"]
    assert isinstance(handling, list)
    # htmx uses the first entry whose code matches: client errors must be swapped in.
    for status in ("401", "403", "404", "410", "413", "422"):
        first = next(entry for entry in handling if re.search(entry["code"], status))
        assert first["swap"] is True, (status, first)


# --- 3. security headers and markup -----------------------------------------------------


def assert_security_headers(response: Any) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == CSP
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert "camera=()" in headers["Permissions-Policy"]
    assert "geolocation=()" in headers["Permissions-Policy"]
    assert "Strict-Transport-Security" not in headers


async def test_security_headers_on_a_page(client: QuartClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert_security_headers(response)


async def test_security_headers_on_an_error_page(client: QuartClient) -> None:
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    text = await markup(response)
    assert_full_page(text)
    assert "Page not found" in text
    assert_security_headers(response)


async def test_security_headers_on_a_json_error(client: QuartClient) -> None:
    response = await client.get("/no/such/page", headers=JSON)
    assert response.status_code == 404
    assert response.content_type == "application/json"
    assert (await response.get_json())["code"] == "not_found"
    assert_security_headers(response)


async def test_security_headers_on_a_static_file(client: QuartClient) -> None:
    response = await client.get("/static/css/app.css")
    assert response.status_code == 200
    assert response.content_type.startswith("text/css")
    assert_security_headers(response)


async def test_security_headers_on_a_download_and_a_fragment(client: QuartClient) -> None:
    share = await upload(client, b"bytes")
    fragment = await client.get(token_path(share), headers=HTMX)
    assert_security_headers(fragment)
    download = await post_form(client, token_path(share))
    assert await download.get_data() == b"bytes"
    assert_security_headers(download)


async def test_hsts_only_over_https(client: QuartClient) -> None:
    plain = await client.get("/")
    assert "Strict-Transport-Security" not in plain.headers
    secure = await client.get("/", scheme="https")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


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


# --- 4. text secrets ----------------------------------------------------------------------


async def test_text_field_creates_a_text_share(
    client: QuartClient, redis_client: redis.Redis, blob_dir: Path
) -> None:
    share = await upload_text(client, "Grüße\r\nline two\r\n")
    assert share["size"] == len("Grüße\nline two\n".encode())
    assert share["protected"] is False
    assert redis_client.hget(f"ots:share:{share['id']}", "kind") == b"text"
    assert stored_files(blob_dir) == [f"{share['id']}.blob"]

    revealed = await post_form(client, token_path(share))
    assert revealed.status_code == 200
    assert secret_text(await markup(revealed)) == "Grüße\nline two\n"


async def test_text_landing_says_message_and_never_shows_the_text(client: QuartClient) -> None:
    share = await upload_text(client, "the launch code is 0000")
    for headers in ({}, HTMX):
        response = await client.get(token_path(share), headers=headers)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        text = await markup(response)
        assert "message" in text
        assert "Reveal the message" in text
        assert "launch code" not in text
        assert 'class="secret"' not in text
    # Looking did not consume it.
    revealed = await post_form(client, token_path(share))
    assert secret_text(await markup(revealed)) == "the launch code is 0000"


async def test_text_landing_title_names_a_message_not_a_file(client: QuartClient) -> None:
    share = await upload_text(client, "hello")
    page = await markup(await client.get(token_path(share)))
    title = re.search(r"<title>(.*?)</title>", page, re.DOTALL)
    assert title is not None
    assert "message" in title.group(1).lower(), title.group(1)
    assert "file" not in title.group(1).lower(), title.group(1)


async def test_reveal_escapes_the_text_and_works_once(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    secret = '<script>alert(1)</script> & "quotes"'
    share = await upload_text(client, secret)

    response = await post_form(client, token_path(share))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = await markup(response)
    assert_full_page(page)
    assert secret_text(page) == str(escape(secret))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; " in page
    assert secret not in page
    assert "<script>alert" not in page
    assert stored_files(blob_dir) == []
    assert_only_tombstone(redis_client, share, b"downloaded")

    again = await post_form(client, token_path(share), headers=JSON)
    assert again.status_code == 410
    assert (await again.get_json())["reason"] == "downloaded"
    browser_again = await post_form(client, token_path(share))
    assert browser_again.status_code == 410
    assert "&lt;script&gt;" not in await markup(browser_again)


async def test_htmx_reveal_is_a_fragment(client: QuartClient) -> None:
    share = await upload_text(client, "fragmentary")
    response = await post_form(client, token_path(share), headers=HTMX)
    assert response.status_code == 200
    text = await markup(response)
    assert_fragment(text)
    assert 'id="share-panel"' in text
    assert secret_text(text) == "fragmentary"


async def test_protected_text_wrong_password_counts_and_right_one_reveals(
    client: QuartClient, settings: Settings
) -> None:
    share = await upload_text(client, "guarded words", password="open sesame")
    landing = await markup(await client.get(token_path(share)))
    assert "Protected message" in landing
    assert "guarded words" not in landing
    assert 'type="password"' in landing

    wrong = await post_form(client, token_path(share), "nope", headers=JSON)
    assert wrong.status_code == 401
    payload = await wrong.get_json()
    assert payload["code"] == "wrong_password"
    assert payload["tries_left"] == settings.max_password_tries - 1

    browser = await post_form(client, token_path(share), "nope")
    assert browser.status_code == 401
    assert f"{settings.max_password_tries - 2} tries left" in await markup(browser)

    right = await post_form(client, token_path(share), "open sesame")
    assert right.status_code == 200
    assert secret_text(await markup(right)) == "guarded words"


async def test_htmx_wrong_password_retargets_the_password_panel(
    client: QuartClient, settings: Settings
) -> None:
    share = await upload_text(client, "guarded", password="right")
    response = await post_form(client, token_path(share), "wrong", headers=HTMX)
    assert response.status_code == 401
    assert response.headers["HX-Retarget"] == "#password-panel"
    assert response.headers["HX-Reswap"] == "outerHTML"
    assert response.headers["Cache-Control"] == "no-store"
    text = await markup(response)
    assert_fragment(text)
    assert text.lstrip().startswith('<div id="password-panel">')
    assert 'class="form-error"' in text
    assert f"Wrong password. {settings.max_password_tries - 1} tries left" in text
    assert "guarded" not in text


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
    assert stored_files(blob_dir) == []
    assert share_keys(redis_client) == []


async def test_file_and_text_together_are_422_and_leave_nothing(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    body, headers = multipart({"text": "a message"}, ("a.txt", b"a file"))
    response = await client.post("/upload", data=body, headers={**headers, **JSON})
    assert response.status_code == 422
    assert "either a file or a text" in (await response.get_json())["error"]
    assert stored_files(blob_dir) == []
    assert share_keys(redis_client) == []


# --- 5. unlock ----------------------------------------------------------------------------


async def test_unlock_hands_over_a_download_form_without_consuming(client: QuartClient) -> None:
    data = b"\x00binary\xffcontent" * 100
    password = 'p&"w<d>'
    share = await upload(client, data, filename="keys.bin", password=password)
    path = token_path(share)

    response = await post_form(client, path + "/unlock", password)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = await markup(response)
    assert_full_page(page)
    form = re.search(r"<form\b[^>]*>", page)
    assert form is not None
    assert f'action="{path}"' in form.group(0)
    assert 'method="post"' in form.group(0)
    assert "data-autosubmit" in form.group(0)
    # The password crossed the wire once: the form carries a single-use proof instead.
    assert escape(password) not in page and 'name="password"' not in page
    assert UNLOCK_INPUT.search(page) is not None

    fragment = await markup(await post_form(client, path + "/unlock", password, HTMX))
    assert_fragment(fragment)
    assert fragment.lstrip().startswith('<div id="password-panel">')
    assert "data-autosubmit" in fragment

    # Unlocking twice consumed nothing and cost no tries.
    assert (await client.get(path)).status_code == 200
    proof = UNLOCK_INPUT.search(fragment)
    assert proof is not None
    download = await client.post(path, data=f"unlock={proof.group(1)}", headers=FORM)
    assert download.status_code == 200
    assert await download.get_data() == data


async def test_unlock_without_a_password_is_401_and_not_counted(
    client: QuartClient, settings: Settings
) -> None:
    share = await upload(client, b"x", password="pw")
    for _ in range(settings.max_password_tries + 1):
        response = await post_form(client, token_path(share) + "/unlock", headers=JSON)
        assert response.status_code == 401
        assert (await response.get_json())["tries_left"] == settings.max_password_tries
    assert (await post_form(client, token_path(share), "pw")).status_code == 200


async def test_unlock_wrong_passwords_count_down_then_destroy(
    client: QuartClient, settings: Settings, blob_dir: Path, redis_client: redis.Redis
) -> None:
    share = await upload(client, b"x", password="right")
    unlock = token_path(share) + "/unlock"

    first = await post_form(client, unlock, "wrong")
    assert first.status_code == 401
    left = settings.max_password_tries - 1
    assert f"Wrong password. {left} tries left" in await markup(first)
    for left in range(settings.max_password_tries - 2, 0, -1):
        response = await post_form(client, unlock, "wrong", headers=JSON)
        assert response.status_code == 401
        assert (await response.get_json())["tries_left"] == left
    assert stored_files(blob_dir) == [f"{share['id']}.blob"]

    last = await post_form(client, unlock, "wrong")
    assert last.status_code == 403
    assert "destroyed" in await markup(last)
    assert stored_files(blob_dir) == []
    assert_only_tombstone(redis_client, share, b"destroyed")

    after = await post_form(client, token_path(share), "right", headers=JSON)
    assert after.status_code == 410
    assert (await after.get_json())["reason"] == "destroyed"
    assert (await post_form(client, unlock, "right")).status_code == 410


# --- 6. countdown and status --------------------------------------------------------------


async def test_status_of_a_live_share_counts_down_and_refreshes(client: QuartClient) -> None:
    share = await upload(client, b"x", expires_in=3600)
    path = token_path(share) + "/status"
    text = await markup(await client.get(path, headers=HTMX))
    assert "expires in" in text
    assert f'hx-get="{path}"' in text
    delay = LOAD_DELAY.search(text)
    assert delay is not None, text
    assert delay.group(2) == "s"
    assert 1 <= int(delay.group(1)) <= 60


async def test_status_after_download_is_final(client: QuartClient) -> None:
    share = await upload(client, b"x")
    await post_form(client, token_path(share))
    for headers in ({}, HTMX):
        response = await client.get(token_path(share) + "/status", headers=headers)
        assert response.status_code == 200
        text = await markup(response)
        assert "Already downloaded" in text
        assert "expires in" not in text
        assert_no_polling(text)


async def test_status_after_revocation_is_final(client: QuartClient) -> None:
    share = await upload(client, b"x")
    await client.post(revoke_path(share))
    text = await markup(await client.get(token_path(share) + "/status", headers=HTMX))
    assert "Revoked" in text
    assert_no_polling(text)


async def test_status_of_an_expired_share_is_final(client: QuartClient) -> None:
    share = await upload(client, b"x", expires_in=SHORT_EXPIRY)
    path = token_path(share) + "/status"

    async def says_expired() -> bool:
        return "Expired" in await markup(await client.get(path, headers=HTMX))

    await wait_until_async(says_expired, timeout=SHORT_EXPIRY + 5)

    # The clock can say "expired" a moment before Redis drops the record; once the link
    # answers 410 the countdown must have stopped for good.
    async def link_gone() -> bool:
        return (await client.get(token_path(share))).status_code == 410

    await wait_until_async(link_gone, timeout=SHORT_EXPIRY + 5)
    text = await markup(await client.get(path, headers=HTMX))
    assert "Expired" in text
    assert "expires in" not in text
    assert_no_polling(text)


async def test_status_of_an_unknown_share_is_final(client: QuartClient) -> None:
    response = await client.get(f"/d/{encode_token(new_token())}/status", headers=HTMX)
    assert response.status_code == 200
    text = await markup(response)
    assert "Expired or already downloaded" in text
    assert_no_polling(text)


@pytest.mark.parametrize("token", ["short", "A" * 44, "A" * 42 + "!"])
async def test_status_of_a_malformed_token_is_404(client: QuartClient, token: str) -> None:
    assert (await client.get(f"/d/{token}/status", headers=JSON)).status_code == 404
    assert (await client.get(f"/d/{token}/status", headers=HTMX)).status_code == 404


# --- 7. revoke ----------------------------------------------------------------------------


async def test_revoke_url_is_a_separate_token(client: QuartClient) -> None:
    share = await upload(client, b"x")
    assert re.fullmatch(r"http://localhost/r/[A-Za-z0-9_-]{43}", share["revoke_url"])
    revoke_token = share["revoke_url"].rsplit("/", 1)[1]
    share_token = share["url"].rsplit("/", 1)[1]
    assert revoke_token != share_token
    # The revoke token is not a download link, and the share token is not a revoke link.
    assert (await client.get(f"/d/{revoke_token}", headers=JSON)).status_code == 410
    other = await markup(await client.get(f"/r/{share_token}"))
    assert "Nothing to revoke" in other


async def test_looking_at_the_revoke_page_never_destroys(client: QuartClient) -> None:
    share = await upload(client, b"still mine")
    for _ in range(2):
        response = await client.get(revoke_path(share))
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        text = await markup(response)
        assert "Revoke this share?" in text
        assert f'action="{revoke_path(share)}"' in text
    download = await post_form(client, token_path(share))
    assert await download.get_data() == b"still mine"


async def test_revoke_without_htmx_redirects_and_destroys(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    kept = await upload(client, b"other share")
    share = await upload(client, b"to be revoked")
    path = revoke_path(share)

    response = await client.post(path)
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == path
    assert response.headers["Cache-Control"] == "no-store"

    gone = await post_form(client, token_path(share), headers=JSON)
    assert gone.status_code == 410
    assert (await gone.get_json())["reason"] == "revoked"
    assert stored_files(blob_dir) == [f"{kept['id']}.blob"]
    own_keys = [key for key in share_keys(redis_client) if share["id"].encode() in key]
    assert own_keys == [f"ots:gone:{share['id']}".encode()]
    assert redis_client.get(f"ots:gone:{share['id']}") == b"revoked"
    # Both revoke pointers remain: the other share's, and this one's, so the revoke page
    # can keep saying what happened until the tombstone expires.
    pointers = [key for key in share_keys(redis_client) if key.startswith(b"ots:revoke:")]
    assert sorted(redis_client.get(key) for key in pointers) == sorted(
        [kept["id"].encode(), share["id"].encode()]
    )

    assert await (await post_form(client, token_path(kept))).get_data() == b"other share"


async def test_revoke_result_page_after_the_redirect_says_revoked(client: QuartClient) -> None:
    share = await upload(client, b"to be revoked")
    response = await client.post(revoke_path(share), follow_redirects=True)
    assert response.status_code == 200
    text = await markup(response)
    assert "Share revoked" in text
    assert "Nothing to revoke" not in text
    again = await markup(await client.get(revoke_path(share)))
    assert "Share revoked" in again


async def test_htmx_revoke_answers_with_the_fragment(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    share = await upload(client, b"to be revoked")
    response = await client.post(revoke_path(share), headers=HTMX)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = await markup(response)
    assert_fragment(text)
    assert "Share revoked" in text
    assert stored_files(blob_dir) == []
    assert_only_tombstone(redis_client, share, b"revoked")


async def test_revoking_an_already_downloaded_share_says_so(client: QuartClient) -> None:
    share = await upload(client, b"taken")
    assert await (await post_form(client, token_path(share))).get_data() == b"taken"

    fragment = await client.post(revoke_path(share), headers=HTMX)
    assert fragment.status_code == 200
    assert "Already downloaded" in await markup(fragment)
    redirected = await client.post(revoke_path(share))
    assert redirected.status_code == 303
    page = await client.get(revoke_path(share))
    assert page.status_code == 200
    assert "Already downloaded" in await markup(page)


async def test_revoke_page_of_a_destroyed_share_says_so(
    client: QuartClient, settings: Settings
) -> None:
    share = await upload(client, b"x", password="right")
    for _ in range(settings.max_password_tries):
        await post_form(client, token_path(share), "wrong", headers=JSON)
    assert (await post_form(client, token_path(share), "right")).status_code == 410

    page = await client.get(revoke_path(share))
    assert page.status_code == 200
    assert "Already destroyed" in await markup(page)
    fragment = await client.post(revoke_path(share), headers=HTMX)
    assert "Already destroyed" in await markup(fragment)


@pytest.mark.parametrize("token", ["short", "A" * 44, "A" * 42 + "!"])
async def test_malformed_revoke_token_is_404(client: QuartClient, token: str) -> None:
    assert (await client.get(f"/r/{token}")).status_code == 404
    assert (await client.post(f"/r/{token}", headers=JSON)).status_code == 404
    assert (await client.post(f"/r/{token}", headers=HTMX)).status_code == 404


async def test_unknown_revoke_token_has_nothing_to_revoke(
    client: QuartClient, redis_client: redis.Redis
) -> None:
    share = await upload(client, b"unrelated")
    path = f"/r/{encode_token(new_token())}"
    page = await client.get(path)
    assert page.status_code == 200
    assert "Nothing to revoke" in await markup(page)
    fragment = await client.post(path, headers=HTMX)
    assert fragment.status_code == 200
    assert "Nothing to revoke" in await markup(fragment)
    assert redis_client.exists(f"ots:share:{share['id']}") == 1


# --- 8. upload progress -------------------------------------------------------------------


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


async def test_home_form_carries_a_fresh_upload_id_first(client: QuartClient) -> None:
    first = await markup(await client.get("/"))
    second = await markup(await client.get("/"))
    ids = [re.search(r'name="upload_id" value="([^"]+)"', page) for page in (first, second)]
    assert ids[0] is not None and ids[1] is not None
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", ids[0].group(1))
    assert ids[0].group(1) != ids[1].group(1)
    # The small fields come before the file so the server can use them while it streams.
    assert first.index('name="upload_id"') < first.index('name="file"')
    assert first.index('name="expires_in"') < first.index('name="file"')


# --- 9. errors for htmx requests ---------------------------------------------------------


async def test_htmx_landing_of_a_downloaded_share_retargets_the_panel(client: QuartClient) -> None:
    share = await upload(client, b"once")
    await post_form(client, token_path(share))

    response = await client.get(token_path(share), headers=HTMX)
    assert response.status_code == 410
    assert response.headers["HX-Retarget"] == "#share-panel"
    assert response.headers["HX-Reswap"] == "outerHTML"
    assert response.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in response.headers["Vary"]
    text = await markup(response)
    assert_fragment(text)
    assert 'id="share-panel"' in text
    assert "already downloaded" in text

    page = await client.get(token_path(share))
    assert page.status_code == 410
    assert "HX-Retarget" not in page.headers
    assert_full_page(await markup(page))


async def test_htmx_unlock_of_a_gone_share_retargets_the_panel(client: QuartClient) -> None:
    share = await upload(client, b"once", password="pw")
    await client.post(revoke_path(share))
    response = await post_form(client, token_path(share) + "/unlock", "pw", HTMX)
    assert response.status_code == 410
    assert response.headers["HX-Retarget"] == "#share-panel"
    text = await markup(response)
    assert_fragment(text)
    assert "revoked" in text


# --- 10. upload form errors in a browser -------------------------------------------------


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
    assert stored_files(blob_dir) == []
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
