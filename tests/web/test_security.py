"""The security headers every response carries (app/web/security.py): the exact set on
every kind of response, no-store wherever a share shows, HSTS only over TLS or when asked."""

from __future__ import annotations

import dataclasses
from typing import Any

from quart import Quart
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.web.app import create_app
from tests.helpers import (
    BROWSER,
    FORM,
    HTMX,
    JSON,
    assert_full_page,
    markup,
    post_form,
    token_path,
    upload,
)

# Written out, not imported: a change to the policy must show up here.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
EXPECTED_HEADERS = {
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
SECURITY_HEADER_NAMES = {*EXPECTED_HEADERS, "permissions-policy", "strict-transport-security"}


def security_headers(response: Any) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in response.headers.items()
        if name.lower() in SECURITY_HEADER_NAMES
    }


def assert_security_headers(response: Any) -> None:
    headers = security_headers(response)
    permissions = headers.pop("permissions-policy", "")
    assert headers == EXPECTED_HEADERS
    assert "camera=()" in permissions
    assert "geolocation=()" in permissions


async def response_kinds(client: QuartClient) -> dict[str, Any]:
    share = await upload(client, b"headers")
    gone = await upload(client, b"gone")
    await client.post(token_path(gone))
    fragment = await client.get(token_path(share), headers=HTMX)
    return {
        "page": await client.get("/"),
        "fragment": fragment,
        "landing": await client.get(token_path(share)),
        "error page": await client.get("/no/such/page"),
        "json error": await client.get(token_path(gone), headers=JSON),
        "static file": await client.get("/static/css/app.css"),
        "health": await client.get("/healthz"),
        "download": await client.post(token_path(share)),
        "method not allowed": await client.put("/upload"),
    }


# --- on every kind of response ------------------------------------------------------------


async def test_the_exact_security_headers_on_every_kind_of_response(client: QuartClient) -> None:
    for kind, response in (await response_kinds(client)).items():
        headers = security_headers(response)
        permissions = headers.pop("permissions-policy", "")
        assert headers == EXPECTED_HEADERS, kind
        for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
            assert feature in permissions, kind


async def test_no_store_on_everything_that_shows_a_share(client: QuartClient) -> None:
    kinds = await response_kinds(client)
    for kind in ("fragment", "landing", "json error", "download"):
        assert kinds[kind].headers["Cache-Control"] == "no-store", kind


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


async def test_406_and_429_carry_the_security_headers_too(guarded_app: Quart) -> None:
    client = guarded_app.test_client()
    share = await upload(client, b"x")
    blocked = await client.get(token_path(share), headers={"User-Agent": "curl/8"})
    assert blocked.status_code == 406
    assert_security_headers(blocked)
    for _ in range(3):
        await client.post(token_path(share) + "/unlock", headers={**BROWSER, **FORM})
    limited = await client.post(token_path(share) + "/unlock", headers={**BROWSER, **FORM})
    assert limited.status_code == 429
    assert set(security_headers(limited)) >= set(EXPECTED_HEADERS)


# --- HSTS ------------------------------------------------------------------------------------


async def test_hsts_only_on_https_or_when_configured(
    settings: Settings, client: QuartClient
) -> None:
    assert "Strict-Transport-Security" not in (await client.get("/")).headers
    over_tls = await client.get("/", scheme="https")
    assert over_tls.headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"
    application = create_app(dataclasses.replace(settings, hsts=True))
    async with application.test_app():
        forced = await application.test_client().get("/")
    assert forced.headers["Strict-Transport-Security"].startswith("max-age=")
