"""Rate limits: declared on every route, atomic across processes, keyed by the real peer."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor

import httpx
import pytest
import redis
from quart import Quart
from quart.typing import TestClientProtocol as QuartClient
from quart_rate_limiter import QUART_RATE_LIMITER_EXEMPT_ATTRIBUTE

from onetimeshare.config import DEFAULT_RATE_LIMITS, RateLimitSpecError, Settings, parse_limits
from onetimeshare.web.app import create_app
from onetimeshare.web.ratelimit import EXEMPT_ENDPOINTS, LIMITED_ATTRIBUTE
from tests.helpers import BROWSER, JSON, LiveServerFactory, multipart, upload


def test_parse_limits() -> None:
    assert parse_limits("10/minute; 100/day") == ((10, 60), (100, 86400))
    assert parse_limits("20 / 10 seconds") == ((20, 10),)
    assert parse_limits("5/hours,1/second") == ((5, 3600), (1, 1))
    for bad in ("", "ten/minute", "10/fortnight", "0/minute", "10"):
        with pytest.raises(RateLimitSpecError):
            parse_limits(bad)


def test_every_route_is_limited_or_explicitly_exempt(app: Quart) -> None:
    unaccounted = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.endpoint in EXEMPT_ENDPOINTS:
            continue
        if getattr(view, QUART_RATE_LIMITER_EXEMPT_ATTRIBUTE, False):
            continue
        category = getattr(view, LIMITED_ATTRIBUTE, None)
        if category not in DEFAULT_RATE_LIMITS:
            unaccounted.append(rule.rule)
    assert unaccounted == []
    exempt = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint in EXEMPT_ENDPOINTS
        or getattr(app.view_functions[rule.endpoint], QUART_RATE_LIMITER_EXEMPT_ATTRIBUTE, False)
    }
    assert exempt == {"/static/<path:filename>", "/healthz"}


@pytest.fixture
async def limited_app(settings: Settings) -> AsyncIterator[Quart]:
    tight = dataclasses.replace(
        settings,
        rate_limits_enabled=True,
        rate_limits={
            **settings.rate_limits,
            "page": parse_limits("3/minute"),
            "download": parse_limits("2/minute"),
            "upload": parse_limits("2/minute; 3/day"),
        },
    )
    application = create_app(tight)
    async with application.test_app():
        yield application


async def test_the_limit_answers_429_with_retry_after_as_page_and_json(
    limited_app: Quart, redis_client: redis.Redis
) -> None:
    client = limited_app.test_client()
    for _ in range(3):
        assert (await client.get("/")).status_code == 200
    page = await client.get("/")
    assert page.status_code == 429
    assert 15 <= int(page.headers["Retry-After"]) <= 20  # one request every 20 s
    text = await page.get_data(as_text=True)
    assert "Too many requests" in text and "Traceback" not in text
    answer = await client.get("/", headers=JSON)
    assert answer.status_code == 429
    payload = await answer.get_json()
    assert payload["code"] == "rate_limited"
    assert payload["retry_after"] == int(answer.headers["Retry-After"])
    # Every limiter key expires when its budget refills: nothing piles up in Redis.
    keys = list(redis_client.scan_iter("ots:rl:*"))
    assert keys
    for key in keys:
        assert 0 < redis_client.pttl(key) <= 60_000


async def test_rejected_requests_do_not_use_up_the_budget(limited_app: Quart) -> None:
    """GCRA records only allowed requests: hammering while limited does not extend the wait."""
    client = limited_app.test_client()
    for _ in range(3):
        await client.get("/")
    waits = [int((await client.get("/")).headers["Retry-After"]) for _ in range(5)]
    assert max(waits) - min(waits) <= 1


async def test_routes_of_one_category_share_one_budget(limited_app: Quart) -> None:
    client = limited_app.test_client()
    share = await upload(client, b"x", password="pw")
    token = share["url"].rsplit("/", 1)[1]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    first = await client.post(f"/d/{token}/unlock", data="password=no", headers=form)
    second = await client.post(f"/d/{token}", data="password=no", headers=form)
    third = await client.post(f"/d/{token}/unlock", data="password=no", headers=form)
    assert [first.status_code, second.status_code, third.status_code] == [401, 401, 429]


async def test_daily_upload_limit_applies_alongside_the_minute_limit(limited_app: Quart) -> None:
    client = limited_app.test_client()
    await upload(client, b"1")
    await upload(client, b"2")
    blocked = await upload(client, b"3", expect=429)
    assert blocked["code"] == "rate_limited"


async def test_limits_can_be_switched_off(settings: Settings) -> None:
    relaxed = dataclasses.replace(
        settings,
        rate_limits_enabled=False,
        rate_limits={**settings.rate_limits, "page": parse_limits("1/minute")},
    )
    application = create_app(relaxed)
    async with application.test_app():
        client = application.test_client()
        assert [(await client.get("/")).status_code for _ in range(3)] == [200, 200, 200]


def _hammer(url: str, count: int) -> list[int]:
    with httpx.Client(headers=BROWSER, timeout=30) as client:
        return [client.get(url).status_code for _ in range(count)]


def test_limits_hold_exactly_across_processes_and_workers(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(
        workers=2, rate_limits_enabled=True, env={"OTS_RATE_PAGE": "20/minute"}
    )
    with ProcessPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_hammer, [f"{server.base_url}/"] * 4, [10] * 4))
    statuses = [status for result in results for status in result]
    assert statuses.count(200) == 20
    assert statuses.count(429) == 20


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(
    live_server_factory: LiveServerFactory,
) -> None:
    untrusted = live_server_factory(
        workers=1, rate_limits_enabled=True, env={"OTS_RATE_PAGE": "2/minute"}
    )
    spoofed = [
        httpx.get(f"{untrusted.base_url}/", headers={**BROWSER, "X-Forwarded-For": f"10.0.0.{n}"})
        for n in range(3)
    ]
    assert [response.status_code for response in spoofed] == [200, 200, 429]

    trusted = live_server_factory(
        workers=1,
        rate_limits_enabled=True,
        env={
            "OTS_RATE_PAGE": "2/minute",
            "TRUSTED_PROXY_HOPS": "1",
            "OTS_PUBLIC_URL": "https://share.example.org",
        },
    )
    per_client = [
        httpx.get(f"{trusted.base_url}/", headers={**BROWSER, "X-Forwarded-For": f"10.0.1.{n}"})
        for n in (1, 1, 1, 2)
    ]
    assert [response.status_code for response in per_client] == [200, 200, 429, 200]


# --- who counts as one client -----------------------------------------------------------


async def page_from(client: QuartClient, address: str) -> int:
    response = await client.get("/", scope_base={"client": (address, 50000)})
    return response.status_code


async def test_addresses_of_one_ipv6_64_share_one_budget(limited_app: Quart) -> None:
    client = limited_app.test_client()
    # One subscriber's /64: rotating through it does not buy more requests.
    statuses = [
        await page_from(client, address)
        for address in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff")
    ]
    assert statuses == [200, 200, 200]
    assert await page_from(client, "2001:db8:1:2:abcd::9") == 429
    # The neighbouring /64 is somebody else.
    assert await page_from(client, "2001:db8:1:3::1") == 200


async def test_the_ipv6_prefix_is_configurable(settings: Settings) -> None:
    application = create_app(
        dataclasses.replace(
            settings,
            rate_limits_enabled=True,
            rate_ipv6_prefix=48,
            rate_limits={**settings.rate_limits, "page": parse_limits("2/minute")},
        )
    )
    async with application.test_app():
        client = application.test_client()
        assert await page_from(client, "2001:db8:1:2::1") == 200
        assert await page_from(client, "2001:db8:1:3::1") == 200  # same /48
        assert await page_from(client, "2001:db8:1:ffff::1") == 429
        assert await page_from(client, "2001:db8:2::1") == 200


async def test_an_ipv4_mapped_address_is_the_ipv4_address(limited_app: Quart) -> None:
    """Bound to [::], IPv4 clients arrive as ::ffff:a.b.c.d; that is not a new client."""
    client = limited_app.test_client()
    assert await page_from(client, "192.0.2.10") == 200
    assert await page_from(client, "::ffff:192.0.2.10") == 200
    assert await page_from(client, "::ffff:c000:20a") == 200  # the same, written in hex
    assert await page_from(client, "192.0.2.10") == 429
    assert await page_from(client, "192.0.2.11") == 200


ADDRESSES = ("192.0.2.77", "2001:db8:77:1::5", "::ffff:198.51.100.77")
RAW_FORMS = (b"192.0.2.77", b"2001:db8:77", b"198.51.100.77", b"c633:644d", b"2001:0db8")


def everything_in(client: redis.Redis) -> list[bytes]:
    """Every key name and every value Redis holds, as bytes."""
    found: list[bytes] = []
    for key in client.scan_iter():
        found.append(key)
        kind = client.type(key)
        if kind == b"string":
            found.append(client.get(key) or b"")
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                found += [field, value]
        elif kind == b"zset":
            found += client.zrange(key, 0, -1)
        elif kind == b"set":
            found += list(client.smembers(key))
        elif kind == b"list":
            found += client.lrange(key, 0, -1)
        elif kind == b"stream":
            for _, entry in client.xrange(key):
                for field, value in entry.items():
                    found += [field, value]
    return found


async def test_redis_holds_no_client_address_after_limited_traffic(
    limited_app: Quart, redis_client: redis.Redis
) -> None:
    client = limited_app.test_client()
    for address in ADDRESSES:
        scope = {"client": (address, 50000)}
        statuses = [(await client.get("/", scope_base=scope)).status_code for _ in range(4)]
        assert statuses[-1] == 429
        body, headers = multipart({}, ("a.txt", b"x"))
        uploaded = await client.post(
            "/upload", data=body, headers={**headers, **JSON}, scope_base=scope
        )
        assert uploaded.status_code == 201
    keys = [key for key in redis_client.scan_iter("ots:rl:*")]
    assert len(keys) >= 2 * len(ADDRESSES)  # a page and an upload budget per client
    stored = everything_in(redis_client)
    for raw in RAW_FORMS:
        leaked = [item for item in stored if raw in item.lower()]
        assert leaked == [], f"{raw!r} is stored in Redis: {leaked[:3]}"
