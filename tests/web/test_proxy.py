"""Behind trusted proxies: the client address and scheme are believed, the forwarded host never."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest
from quart import Quart, request
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.web.app import create_app
from onetimeshare.web.ratelimit import exempt
from tests.helpers import JSON, multipart

PUBLIC_URL = "https://share.example.org"


def with_probe(application: Quart) -> Quart:
    """A route that tells what the app believes about a request, for these tests only."""

    @application.get("/_probe")
    @exempt
    async def probe() -> dict[str, str]:
        return {
            "client": request.remote_addr or "",
            "scheme": request.scheme,
            "host": request.host,
        }

    return application


@contextlib.asynccontextmanager
async def behind_proxies(settings: Settings, hops: int) -> AsyncIterator[Quart]:
    application = with_probe(
        create_app(dataclasses.replace(settings, trusted_proxy_hops=hops, public_url=PUBLIC_URL))
    )
    async with application.test_app():
        yield application


@pytest.fixture
async def behind_two_proxies(settings: Settings) -> AsyncIterator[Quart]:
    async with behind_proxies(settings, 2) as application:
        yield application


@pytest.fixture
async def behind_a_proxy(settings: Settings) -> AsyncIterator[Quart]:
    async with behind_proxies(settings, 1) as application:
        yield application


async def probe(client: QuartClient, **headers: str) -> dict[str, str]:
    response = await client.get(
        "/_probe",
        headers={"Host": "app.internal:8000", **headers},
        scope_base={"client": ("10.9.9.9", 40000)},  # the proxy's own address
    )
    assert response.status_code == 200
    return await response.get_json()  # type: ignore[no-any-return]


async def test_forwarded_for_and_proto_are_believed_but_never_forwarded_host(
    behind_a_proxy: Quart,
) -> None:
    client = behind_a_proxy.test_client()
    # The client wrote the first address and the host; the proxy appended the second.
    forged = {
        "X-Forwarded-For": "198.51.100.66, 203.0.113.7",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
    }
    seen = await probe(client, **forged)
    assert seen == {"client": "203.0.113.7", "scheme": "https", "host": "app.internal:8000"}

    body, headers = multipart({}, ("a.txt", b"x"))
    created = await client.post(
        "/upload", data=body, headers={**headers, **JSON, "X-Forwarded-Host": "evil.example"}
    )
    assert created.status_code == 201
    answer = await created.get_json()
    assert answer["url"].startswith(f"{PUBLIC_URL}/d/")
    assert answer["revoke_url"].startswith(f"{PUBLIC_URL}/r/")
    # HSTS follows the scheme the proxy reports, never a forwarded host.
    assert "Strict-Transport-Security" not in created.headers
    page = await client.get("/", headers={"X-Forwarded-Host": "evil.example"})
    assert "Strict-Transport-Security" not in page.headers
    assert "evil.example" not in await page.get_data(as_text=True)
    https = await client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in https.headers


async def test_with_two_proxies_the_second_address_from_the_right_is_the_client(
    behind_two_proxies: Quart,
) -> None:
    client = behind_two_proxies.test_client()
    seen = await probe(client, **{"X-Forwarded-For": "198.51.100.66, 203.0.113.7, 10.0.0.2"})
    assert seen["client"] == "203.0.113.7"
    # Fewer values than proxies: someone in front did not append; keep the peer.
    assert (await probe(client, **{"X-Forwarded-For": "203.0.113.7"}))["client"] == "10.9.9.9"
    # The scheme: proxies overwrite it, so the one value there is the proxies' own; with
    # several, the second from the right, like the address.
    assert (await probe(client, **{"X-Forwarded-Proto": "https"}))["scheme"] == "https"
    assert (await probe(client, **{"X-Forwarded-Proto": "http, https, http"}))["scheme"] == "https"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("203.0.113.7:51234", "203.0.113.7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("2001:DB8::7", "2001:db8::7"),
        ("unknown", "10.9.9.9"),
        ("evil.example", "10.9.9.9"),
        ("", "10.9.9.9"),
    ],
)
async def test_forwarded_addresses_are_parsed_or_ignored(
    behind_a_proxy: Quart, forwarded: str, client: str
) -> None:
    seen = await probe(behind_a_proxy.test_client(), **{"X-Forwarded-For": forwarded})
    assert seen["client"] == client


@pytest.mark.parametrize("scheme", ["javascript", "ftp", ""])
async def test_only_http_and_https_are_taken_from_forwarded_proto(
    behind_a_proxy: Quart, scheme: str
) -> None:
    seen = await probe(behind_a_proxy.test_client(), **{"X-Forwarded-Proto": scheme})
    assert seen["scheme"] == "http"
