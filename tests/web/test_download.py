"""GET and POST /d/<token>: the landing page, the one-time download, passwords and expiry."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from quart import Quart
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.domain.crypto import encode_token, new_token
from onetimeshare.web.app import create_app
from tests.conftest import SHORT_EXPIRY
from tests.helpers import JSON, random_bytes, share_keys, token_path, upload, wait_until_async

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def download(
    client: QuartClient,
    path: str,
    password: str | None = None,
    headers: dict[str, str] | None = None,
):  # type: ignore[no-untyped-def]
    body = f"password={quote(password)}" if password is not None else ""
    return await client.post(path, data=body, headers={**FORM, **(headers or {})})


async def test_round_trip_returns_identical_bytes_with_safe_headers(client: QuartClient) -> None:
    data = random_bytes(3 * 1024 * 1024 + 17)
    share = await upload(client, data, filename="contract.pdf")

    response = await download(client, token_path(share))

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
    response = await download(client, token_path(share))
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

    response = await download(client, token_path(share))
    assert await response.get_data() == b"still here"


async def test_second_download_gets_410_and_the_blob_is_gone(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    share = await upload(client, b"once")
    first = await download(client, token_path(share))
    assert await first.get_data() == b"once"

    again = await download(client, token_path(share), headers=JSON)
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
    response = await download(client, token_path(share), "correct horse")
    assert response.status_code == 200
    assert await response.get_data() == b"classified"


async def test_missing_password_is_not_counted(client: QuartClient, settings: Settings) -> None:
    share = await upload(client, b"x", password="pw")
    for _ in range(settings.max_password_tries + 1):
        response = await download(client, token_path(share), headers=JSON)
        assert response.status_code == 401
        payload = await response.get_json()
        assert payload["code"] == "password_required"
        assert payload["tries_left"] == settings.max_password_tries
    assert (await download(client, token_path(share), "pw")).status_code == 200


async def test_wrong_passwords_count_down_then_destroy(
    client: QuartClient, settings: Settings, blob_dir: Path
) -> None:
    share = await upload(client, b"x", password="right")
    for left in range(settings.max_password_tries - 1, 0, -1):
        response = await download(client, token_path(share), "wrong", headers=JSON)
        assert response.status_code == 401
        payload = await response.get_json()
        assert payload["tries_left"] == left
        assert f"{left} tr" in payload["error"]

    last = await download(client, token_path(share), "wrong", headers=JSON)
    assert last.status_code == 403
    assert "destroyed" in (await last.get_json())["error"]
    assert list(blob_dir.iterdir()) == []

    after = await download(client, token_path(share), "right", headers=JSON)
    assert after.status_code == 410
    assert (await after.get_json())["reason"] == "destroyed"


async def test_wrong_password_in_a_browser_shows_the_form_again(client: QuartClient) -> None:
    share = await upload(client, b"x", password="right")
    response = await download(client, token_path(share), "wrong")
    assert response.status_code == 401
    text = await response.get_data(as_text=True)
    assert "Wrong password. 4 tries left" in text
    assert 'name="password"' in text
    assert response.headers["Cache-Control"] == "no-store"


async def test_overlong_password_on_download_is_422(client: QuartClient) -> None:
    share = await upload(client, b"x", password="right")
    response = await download(client, token_path(share), "p" * 2000, headers=JSON)
    assert response.status_code == 422
    assert (await download(client, token_path(share), "right")).status_code == 200


@pytest.mark.parametrize(
    "token",
    ["short", "A" * 44, "A" * 42 + "!", "%00" * 10, encode_token(new_token())[:-1] + "B"],
)
async def test_malformed_tokens_are_404(client: QuartClient, token: str) -> None:
    assert (await client.get(f"/d/{token}", headers=JSON)).status_code == 404
    assert (await download(client, f"/d/{token}", headers=JSON)).status_code == 404


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
    response = await download(client, token_path(share), headers=JSON)
    assert response.status_code == 410
    assert (await response.get_json())["reason"] == "expired"

    report = await app.extensions["onetimeshare"].janitor.run_once()
    assert report is not None and report.blobs_removed == 1
    assert list(blob_dir.iterdir()) == []


async def test_concurrent_downloads_yield_exactly_one_200(client: QuartClient) -> None:
    data = random_bytes(256 * 1024)
    share = await upload(client, data)
    responses = await asyncio.gather(*(download(client, token_path(share)) for _ in range(16)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [410] * 15
    winner = next(response for response in responses if response.status_code == 200)
    assert await winner.get_data() == data


async def test_concurrent_correct_passwords_yield_exactly_one_200(client: QuartClient) -> None:
    share = await upload(client, b"guarded", password="pw")
    responses = await asyncio.gather(*(download(client, token_path(share), "pw") for _ in range(8)))
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
        assert (await download(client, token_path(share), "nope")).status_code == 401
        response = await download(client, token_path(share), "pw")
        assert await response.get_data() == b"slow hash"
