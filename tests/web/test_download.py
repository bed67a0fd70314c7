"""GET and POST /d/<token>: the landing page, the one-time download, passwords and expiry."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

import pytest
import redis
from markupsafe import escape
from quart import Quart
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.domain.crypto import encode_token, new_token
from onetimeshare.web.app import create_app
from tests.helpers import (
    FORM,
    HTMX,
    JSON,
    LOAD_DELAY,
    SHORT_EXPIRY,
    UNLOCK_INPUT,
    assert_fragment,
    assert_full_page,
    assert_only_tombstone,
    files_in,
    markup,
    post_form,
    random_bytes,
    revoke_path,
    secret_text,
    share_keys,
    token_path,
    upload,
    upload_text,
    wait_until_async,
)


async def test_round_trip_returns_identical_bytes_with_safe_headers(client: QuartClient) -> None:
    data = random_bytes(3 * 1024 * 1024 + 17)
    share = await upload(client, data, filename="contract.pdf")

    response = await post_form(client, token_path(share))

    assert response.status_code == 200
    assert await response.get_data() == data
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"contract.pdf\"; filename*=UTF-8''contract.pdf"
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


async def test_non_ascii_name_uses_rfc_6266_filename_star(client: QuartClient) -> None:
    share = await upload(client, b"x", filename="Vertrag für Zoë.pdf")
    response = await post_form(client, token_path(share))
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Vertrag f_r Zo_.pdf"; ')
    assert disposition.endswith("filename*=UTF-8''Vertrag%20f%C3%BCr%20Zo%C3%AB.pdf")


async def test_looking_never_consumes(client: QuartClient) -> None:
    share = await upload(client, b"still here", filename="notes.txt")
    for _ in range(3):
        page = await client.get(token_path(share))
        assert page.status_code == 200
        assert page.headers["Cache-Control"] == "no-store"
    text = await page.get_data(as_text=True)
    assert "notes.txt" in text
    assert "10 bytes" in text
    head = await client.head(token_path(share))
    assert head.status_code == 200

    response = await post_form(client, token_path(share))
    assert await response.get_data() == b"still here"


async def test_second_download_gets_410_and_the_blob_is_gone(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    share = await upload(client, b"once")
    first = await post_form(client, token_path(share))
    assert await first.get_data() == b"once"

    again = await post_form(client, token_path(share), headers=JSON)
    assert again.status_code == 410
    assert (await again.get_json())["reason"] == "downloaded"
    landing = await client.get(token_path(share))
    assert landing.status_code == 410
    assert "already downloaded" in await landing.get_data(as_text=True)
    assert list(blob_dir.iterdir()) == []
    # Only the tombstone that explains the 410 (and the revoke page's pointer to the
    # share id) is left: no key material.
    left = [key for key in share_keys(redis_client) if not key.startswith(b"ots:revoke:")]
    assert left == [f"ots:gone:{share['id']}".encode()]


async def test_protected_landing_shows_size_but_not_the_name(client: QuartClient) -> None:
    share = await upload(client, b"12345", filename="salaries.xlsx", password="s3cret")
    page = await client.get(token_path(share))
    text = await page.get_data(as_text=True)
    assert "Protected file, 5 bytes" in text
    assert "salaries" not in text
    assert 'type="password"' in text


async def test_correct_password_downloads(client: QuartClient) -> None:
    share = await upload(client, b"classified", password="correct horse")
    response = await post_form(client, token_path(share), "correct horse")
    assert response.status_code == 200
    assert await response.get_data() == b"classified"


async def test_missing_password_is_not_counted(client: QuartClient, settings: Settings) -> None:
    share = await upload(client, b"x", password="pw")
    for _ in range(settings.max_password_tries + 1):
        response = await post_form(client, token_path(share), headers=JSON)
        assert response.status_code == 401
        payload = await response.get_json()
        assert payload["code"] == "password_required"
        assert payload["tries_left"] == settings.max_password_tries
    assert (await post_form(client, token_path(share), "pw")).status_code == 200


async def test_wrong_passwords_count_down_then_destroy(
    client: QuartClient, settings: Settings, blob_dir: Path
) -> None:
    share = await upload(client, b"x", password="right")
    for left in range(settings.max_password_tries - 1, 0, -1):
        response = await post_form(client, token_path(share), "wrong", headers=JSON)
        assert response.status_code == 401
        payload = await response.get_json()
        assert payload["tries_left"] == left
        assert f"{left} tr" in payload["error"]

    last = await post_form(client, token_path(share), "wrong", headers=JSON)
    assert last.status_code == 403
    assert "destroyed" in (await last.get_json())["error"]
    assert list(blob_dir.iterdir()) == []

    after = await post_form(client, token_path(share), "right", headers=JSON)
    assert after.status_code == 410
    assert (await after.get_json())["reason"] == "destroyed"


async def test_wrong_password_in_a_browser_shows_the_form_again(client: QuartClient) -> None:
    share = await upload(client, b"x", password="right")
    response = await post_form(client, token_path(share), "wrong")
    assert response.status_code == 401
    text = await response.get_data(as_text=True)
    assert "Wrong password. 4 tries left" in text
    assert 'name="password"' in text
    assert response.headers["Cache-Control"] == "no-store"


async def test_overlong_password_on_download_is_422(client: QuartClient) -> None:
    share = await upload(client, b"x", password="right")
    response = await post_form(client, token_path(share), "p" * 2000, headers=JSON)
    assert response.status_code == 422
    assert (await post_form(client, token_path(share), "right")).status_code == 200


@pytest.mark.parametrize(
    "token",
    ["short", "A" * 44, "A" * 42 + "!", "%00" * 10, encode_token(new_token())[:-1] + "B"],
)
async def test_malformed_tokens_are_404(client: QuartClient, token: str) -> None:
    assert (await client.get(f"/d/{token}", headers=JSON)).status_code == 404
    assert (await post_form(client, f"/d/{token}", headers=JSON)).status_code == 404


async def test_unknown_well_formed_token_is_410(client: QuartClient) -> None:
    response = await client.get(f"/d/{encode_token(new_token())}", headers=JSON)
    assert response.status_code == 410
    assert (await response.get_json())["reason"] == "unknown"


async def test_expiry_gives_410_and_the_janitor_removes_the_blob(
    app: Quart, client: QuartClient, blob_dir: Path
) -> None:
    share = await upload(client, b"short-lived", expires_in=SHORT_EXPIRY)
    assert len(list(blob_dir.iterdir())) == 1

    async def expired() -> bool:
        return (await client.get(token_path(share))).status_code == 410

    await wait_until_async(expired, timeout=SHORT_EXPIRY + 5)
    response = await post_form(client, token_path(share), headers=JSON)
    assert response.status_code == 410
    assert (await response.get_json())["reason"] == "expired"

    report = await app.extensions["onetimeshare"].janitor.run_once()
    assert report is not None and report.blobs_removed == 1
    assert list(blob_dir.iterdir()) == []


async def test_concurrent_downloads_yield_exactly_one_200(client: QuartClient) -> None:
    data = random_bytes(256 * 1024)
    share = await upload(client, data)
    responses = await asyncio.gather(*(post_form(client, token_path(share)) for _ in range(16)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [410] * 15
    winner = next(response for response in responses if response.status_code == 200)
    assert await winner.get_data() == data


async def test_concurrent_correct_passwords_yield_exactly_one_200(client: QuartClient) -> None:
    share = await upload(client, b"guarded", password="pw")
    responses = await asyncio.gather(
        *(post_form(client, token_path(share), "pw") for _ in range(8))
    )
    assert sorted(response.status_code for response in responses) == [200] + [410] * 7


async def test_production_argon2_parameters_round_trip(settings: Settings) -> None:
    production = dataclasses.replace(
        settings,
        argon2=Settings.from_env(
            {"OTS_DATA_DIR": str(settings.data_dir), "SECRET_KEY": settings.secret_key}
        ).argon2,
    )
    assert production.argon2.memory_kib == 64 * 1024
    app = create_app(production)
    async with app.test_app():
        client = app.test_client()
        share = await upload(client, b"slow hash", password="pw")
        assert (await post_form(client, token_path(share), "nope")).status_code == 401
        response = await post_form(client, token_path(share), "pw")
        assert await response.get_data() == b"slow hash"


# --- text messages -------------------------------------------------------------------------


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
    assert files_in(blob_dir) == []
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


# --- unlock --------------------------------------------------------------------------------


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
    assert files_in(blob_dir) == [f"{share['id']}.blob"]

    last = await post_form(client, unlock, "wrong")
    assert last.status_code == 403
    assert "destroyed" in await markup(last)
    assert files_in(blob_dir) == []
    assert_only_tombstone(redis_client, share, b"destroyed")

    after = await post_form(client, token_path(share), "right", headers=JSON)
    assert after.status_code == 410
    assert (await after.get_json())["reason"] == "destroyed"
    assert (await post_form(client, unlock, "right")).status_code == 410


# --- countdown and status ------------------------------------------------------------------


def assert_no_polling(text: str) -> None:
    assert "hx-trigger" not in text
    assert "hx-get" not in text


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
