"""What every request passes first (app/web/guards.py): CLI blocking, same-origin checks, no
body where a route takes none, and a cap on a client's uploads in flight."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import redis
from quart import Quart
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.web.app import create_app
from onetimeshare.web.clients import ClientKeys
from onetimeshare.web.guards import SAFE_METHODS, TAKES_BODY_ATTRIBUTE
from tests.helpers import (
    BROWSER,
    FORM,
    JSON,
    multipart,
    revoke_path,
    share_keys,
    token_path,
    upload,
)

CLI_AGENTS = [
    "curl/8.5.0",
    "Wget/1.21.3",
    "HTTPie/3.2.2",
    "python-requests/2.32",
    "python-httpx/0.28",
    "Python/3.11 aiohttp/3.9",
    "Go-http-client/1.1",
    "aria2/1.37",
    "libwww-perl/6.72",
    "Mozilla/5.0 (Windows NT; Windows NT 10.0) WindowsPowerShell/5.1",
    "okhttp/4.12",
    "CURL/7.0",
    "",
]


@pytest.mark.parametrize("agent", CLI_AGENTS)
async def test_command_line_clients_get_406_on_download_links(
    guarded_app: Quart, agent: str
) -> None:
    client = guarded_app.test_client()
    share = await upload(client, b"secret", password="pw")  # uploads stay open to any client
    for method in ("GET", "POST"):
        response = await client.open(
            token_path(share),
            method=method,
            headers={"User-Agent": agent, **FORM},
            data="password=wrong",
        )
        assert response.status_code == 406
        assert response.content_type == "text/plain; charset=utf-8"
        assert "open" in (text := await response.get_data(as_text=True)) and "browser" in text
        assert "secret" not in text
    status = await client.get(f"{token_path(share)}/status", headers={"User-Agent": agent})
    assert status.status_code == 406


async def test_blocked_requests_consume_count_and_reveal_nothing(
    guarded_app: Quart, redis_client: redis.Redis
) -> None:
    client = guarded_app.test_client()
    share = await upload(client, b"still here", filename="plans.txt", password="pw")
    for _ in range(10):  # more than the download budget and the password tries
        blocked = await client.post(
            token_path(share), data="password=wrong", headers={"User-Agent": "curl/8", **FORM}
        )
        assert blocked.status_code == 406
        assert "plans" not in await blocked.get_data(as_text=True)
    assert not list(redis_client.scan_iter("ots:rl:download:*"))
    landing = await client.get(token_path(share), headers=BROWSER)
    assert "5 tries left" in await landing.get_data(as_text=True)
    response = await client.post(token_path(share), data="password=pw", headers={**BROWSER, **FORM})
    assert await response.get_data() == b"still here"


async def test_blocking_can_be_switched_off(client: QuartClient) -> None:
    # The default test settings run with BLOCK_CLI_AGENTS=false.
    share = await upload(client, b"scripted")
    response = await client.post(token_path(share), headers={"User-Agent": "curl/8.5.0"})
    assert await response.get_data() == b"scripted"


async def test_the_agent_list_is_configurable(settings: Settings) -> None:
    application = create_app(
        dataclasses.replace(settings, block_cli_agents=True, cli_agents=("mybot",))
    )
    async with application.test_app():
        client = application.test_client()
        share = await upload(client, b"x")
        assert (
            await client.get(token_path(share), headers={"User-Agent": "MyBot/1"})
        ).status_code == 406
        assert (
            await client.get(token_path(share), headers={"User-Agent": "curl/8"})
        ).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost.evil.example"},
    ],
)
async def test_cross_site_posts_are_refused(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis, headers: dict[str, str]
) -> None:
    body, multipart_headers = multipart(file=("a.txt", b"abc"))
    response = await client.post(
        "/upload", data=body, headers={**multipart_headers, **headers, **JSON}
    )
    assert response.status_code == 403
    assert (await response.get_json())["code"] == "cross_site"
    assert not blob_dir.exists() or list(blob_dir.iterdir()) == []
    assert share_keys(redis_client) == []
    share = await upload(client, b"kept")
    refused = await client.post(token_path(share), headers={**headers, **JSON})
    assert refused.status_code == 403
    assert await (await client.post(token_path(share))).get_data() == b"kept"


def test_the_routes_that_read_a_body_say_so_and_no_other_does(app: Quart) -> None:
    """Every route that reads a form or an upload is marked ``@takes_body``; the gateway
    refuses a body everywhere else, so a route that forgets the mark cannot take one."""
    marked = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if getattr(app.view_functions[rule.endpoint], TAKES_BODY_ATTRIBUTE, False)
    }
    assert marked == {
        "/upload",
        "/tus/",
        "/tus/<secret>",
        "/d/<token>",
        "/d/<token>/unlock",
        "/auth/login",
        "/auth/logout",
        "/admin/shares/<share_id>/revoke",
        "/admin/logout-everywhere",
    }
    changing = {
        rule.rule for rule in app.url_map.iter_rules() if set(rule.methods or ()) - SAFE_METHODS
    }
    # The revoke link's form carries nothing: its token is in the address.
    assert changing - marked == {"/r/<revoke_token>"}


async def test_a_body_on_a_route_that_takes_none_is_400(client: QuartClient) -> None:
    share = await upload(client, b"kept")
    response = await client.post(
        revoke_path(share), data="a=b", headers={**FORM, **JSON, "Content-Length": "3"}
    )
    assert response.status_code == 400
    assert (await response.get_json())["code"] == "unexpected_body"
    assert (await client.get(token_path(share))).status_code == 200, "the share was revoked"


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin", "Origin": "null"},  # our no-referrer pages
        {"Sec-Fetch-Site": "none"},
        {"Origin": "http://localhost"},
        {},  # scripts say nothing
    ],
)
async def test_same_origin_posts_pass(client: QuartClient, headers: dict[str, str]) -> None:
    body, multipart_headers = multipart(file=("a.txt", b"abc"))
    response = await client.post(
        "/upload", data=body, headers={**multipart_headers, **headers, **JSON}
    )
    assert response.status_code == 201


async def test_origin_is_checked_against_the_public_url(settings: Settings) -> None:
    application = create_app(dataclasses.replace(settings, public_url="https://share.example"))
    async with application.test_app():
        client = application.test_client()
        body, headers = multipart(file=("a.txt", b"abc"))
        good = await client.post(
            "/upload", data=body, headers={**headers, "Origin": "https://share.example", **JSON}
        )
        bad = await client.post(
            "/upload", data=body, headers={**headers, "Origin": "http://share.example", **JSON}
        )
    assert (good.status_code, bad.status_code) == (201, 403)


# --- upload requests in flight per client ---------------------------------------------------


async def test_uploads_beyond_the_clients_slots_get_429_as_page_and_json(
    guarded_app: Quart, settings: Settings, redis_client: redis.Redis
) -> None:
    """Here the slots are taken directly, as by requests still running in other workers;
    tests/web/test_inflight.py holds real ones open on a live server."""
    slots = guarded_app.extensions["onetimeshare"].upload_slots
    busy = ("198.51.100.5", 40000)
    for _ in range(settings.uploads_per_client):
        assert await slots.take(ClientKeys(settings.secret_key, 64).key_of(busy[0]))
    client = guarded_app.test_client()
    body, headers = multipart(file=("a.txt", b"abc"))
    page = await client.post(
        "/upload", data=body, headers={**headers, **BROWSER}, scope_base={"client": busy}
    )
    assert page.status_code == 429
    assert page.headers["Retry-After"] == "5"
    text = await page.get_data(as_text=True)
    assert "Too many uploads at once" in text and "already in progress" in text
    answer = await client.post(
        "/upload", data=body, headers={**headers, **JSON}, scope_base={"client": busy}
    )
    assert answer.status_code == 429
    refusal = await answer.get_json()
    assert (refusal["code"], refusal["retry_after"]) == ("uploads_in_flight", 5)
    assert f"{settings.uploads_per_client} uploads" in refusal["error"]
    # Refused before the body was read: no file, no upload mark, only the taken slots.
    assert [key for key in share_keys(redis_client) if not key.startswith(b"ots:inflight:")] == []
    assert not settings.blob_dir.exists() or list(settings.blob_dir.iterdir()) == []
    other = await client.post(
        "/upload", data=body, headers={**headers, **JSON}, scope_base={"client": ("::1", 1)}
    )
    assert other.status_code == 201
