"""Who gets into the admin area: no credential, no area; one account; sessions kept in Redis
that really end; the same answer for every failed login; a login budget; CSRF tokens."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import AsyncIterator

import pytest
import redis
from quart import Quart, Response
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings, parse_limits
from onetimeshare.domain.keys import ADMIN_SESSION as SESSION_PREFIX
from tests.helpers import (
    ADMIN_PANELS,
    ADMIN_PASSWORD,
    ADMIN_USER,
    FORM,
    HTMX,
    csrf_of,
    login,
    running_app,
    signed_in,
    upload,
    urlencoded,
)

LOGIN_FAILED = "The user name or password is wrong."
SESSION_KEY = re.compile(rb"ots:admin:session:[0-9a-f]{64}")
LOGIN_ERROR = re.compile(r'<p class="form-error" role="alert" id="login-error">(.*?)</p>', re.S)


# --- helpers ---------------------------------------------------------------------------


def cookie_parts(header: str) -> tuple[str, str, dict[str, str]]:
    """'name=value; HttpOnly; SameSite=Strict' -> (name, value, {'httponly': '', ...})."""
    first, *attributes = (part.strip() for part in header.split(";"))
    name, _, value = first.partition("=")
    parsed = {}
    for attribute in attributes:
        key, _, setting = attribute.partition("=")
        parsed[key.lower()] = setting
    return name, value, parsed


def admin_cookie(response: Response) -> tuple[str, dict[str, str]]:
    cookies = [cookie_parts(header) for header in response.headers.getlist("Set-Cookie")]
    matching = [(value, attributes) for name, value, attributes in cookies if name == "ots_admin"]
    assert len(matching) == 1, response.headers.getlist("Set-Cookie")
    return matching[0]


def session_keys(redis_client: redis.Redis) -> list[bytes]:
    return sorted(redis_client.scan_iter(match=SESSION_PREFIX + "*"))


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def plain_password_settings(settings: Settings) -> Settings:
    """ADMIN_PASSWORD itself, which the app hashes at start-up with the production
    parameters (the other tests sign in with a cheap hash of it)."""
    return dataclasses.replace(settings, admin_password=ADMIN_PASSWORD, admin_cookie_secure=False)


@pytest.fixture
async def plain_password_app(plain_password_settings: Settings) -> AsyncIterator[Quart]:
    async with running_app(plain_password_settings) as application:
        yield application


# --- no credential, no admin area --------------------------------------------------------


async def test_without_a_credential_there_is_no_admin_area(client: QuartClient) -> None:
    assert (await client.get("/auth/login")).status_code == 404
    posted = await client.post(
        "/auth/login", data=urlencoded(user="admin", password="anything"), headers=FORM
    )
    assert posted.status_code == 404
    assert (await client.get("/admin")).status_code == 404
    assert (await client.get("/admin/counters")).status_code == 404
    assert (await client.get("/admin/counters", headers=HTMX)).status_code == 404


# --- getting in ------------------------------------------------------------------------


async def test_the_dashboard_without_a_session_sends_to_login(plain_password_app: Quart) -> None:
    client = plain_password_app.test_client()
    response = await client.get("/admin")
    assert response.status_code == 303
    assert response.headers["Location"] == "/auth/login"

    for path in ("/admin", "/admin/counters"):
        fragment = await client.get(path, headers=HTMX)
        assert fragment.status_code == 401, path
        assert fragment.headers["HX-Redirect"] == "/auth/login"
        assert "Location" not in fragment.headers

    page = await client.get("/auth/login")
    assert page.status_code == 200
    text = await page.get_data(as_text=True)
    assert 'name="user"' in text and 'name="password"' in text


async def test_login_sets_a_strict_http_only_cookie_and_opens_the_dashboard(
    plain_password_app: Quart,
) -> None:
    client = plain_password_app.test_client()
    response = await login(client)
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin"
    value, attributes = admin_cookie(response)
    assert value
    assert "httponly" in attributes
    assert attributes["samesite"] == "Strict"
    assert "secure" not in attributes  # admin_cookie_secure=False, for plain-HTTP development

    dashboard = await client.get("/admin")
    assert dashboard.status_code == 200
    text = await dashboard.get_data(as_text=True)
    assert '<h1 class="page-title">Dashboard</h1>' in text
    assert 'id="admin-counters"' in text


async def test_the_cookie_is_secure_by_default(settings: Settings) -> None:
    secure = dataclasses.replace(settings, admin_password=ADMIN_PASSWORD)
    assert secure.admin_cookie_secure is True
    async with running_app(secure) as application:
        response = await login(application.test_client(), scheme="https")
        assert response.status_code == 303
        _, attributes = admin_cookie(response)
        assert "secure" in attributes
        assert "httponly" in attributes
        assert attributes["samesite"] == "Strict"


@pytest.mark.parametrize(
    ("user", "password"),
    [
        (ADMIN_USER, "wrong-password-but-long"),
        ("administrator", ADMIN_PASSWORD),
        ("", ""),
        ('"><img src=x onerror=alert(1)>', "wrong-password-but-long"),
    ],
    ids=["wrong-password", "wrong-user", "empty", "markup-in-user"],
)
async def test_every_failed_login_gets_the_same_answer(
    plain_password_app: Quart, redis_client: redis.Redis, user: str, password: str
) -> None:
    client = plain_password_app.test_client()
    response = await login(client, user, password)
    assert response.status_code == 401
    assert response.headers.getlist("Set-Cookie") == []
    text = await response.get_data(as_text=True)
    errors = LOGIN_ERROR.findall(text)
    assert errors == [LOGIN_FAILED]
    if password:
        assert password not in text
    assert "<img" not in text  # the user name shown again in the form is escaped
    assert session_keys(redis_client) == []
    assert (await client.get("/admin")).status_code == 303


async def test_check_needs_both_the_user_and_the_password(plain_password_app: Quart) -> None:
    access = plain_password_app.extensions["onetimeshare"].admin
    assert await access.check(ADMIN_USER, ADMIN_PASSWORD) is True
    assert await access.check("root", ADMIN_PASSWORD) is False
    assert await access.check(ADMIN_USER, ADMIN_PASSWORD + "x") is False
    assert await access.check("root", ADMIN_PASSWORD + "x") is False


# --- ADMIN_PASSWORD_HASH ---------------------------------------------------------------


async def test_login_with_a_configured_argon2id_hash(
    settings: Settings, correct_horse_hash: str
) -> None:
    password = "correct horse battery"
    encoded = correct_horse_hash
    assert encoded.startswith("$argon2id$")
    hashed = dataclasses.replace(settings, admin_password_hash=encoded, admin_cookie_secure=False)
    assert hashed.admin_password is None
    async with running_app(hashed) as application:
        client = application.test_client()
        assert (await login(client, password=encoded)).status_code == 401
        assert (await client.get("/admin")).status_code == 303
        response = await login(client, password=password)
        assert response.status_code == 303
        assert (await client.get("/admin")).status_code == 200


# --- sessions in Redis -----------------------------------------------------------------


async def test_a_login_is_one_hashed_session_key_in_redis(
    admin_app: Quart, admin_settings: Settings, redis_client: redis.Redis
) -> None:
    client = admin_app.test_client()
    response = await login(client)
    cookie, _ = admin_cookie(response)

    keys = session_keys(redis_client)
    assert len(keys) == 1
    key = keys[0]
    assert SESSION_KEY.fullmatch(key)
    assert 0 < redis_client.ttl(key) <= admin_settings.admin_session_seconds
    digest = key.decode().removeprefix(SESSION_PREFIX)
    assert digest != cookie
    assert digest not in cookie
    # The cookie carries the session id signed; Redis holds only the id's SHA-256.
    session_id = admin_app.extensions["QUART_AUTH"][0].load_token(cookie, app=admin_app)
    assert session_id
    assert key.decode() == SESSION_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()
    assert not list(redis_client.scan_iter(match=f"*{session_id}*"))


async def test_logout_ends_the_session_and_the_old_cookie_with_it(
    admin_app: Quart, redis_client: redis.Redis
) -> None:
    client = admin_app.test_client()
    cookie, _ = admin_cookie(await login(client))
    csrf = await csrf_of(client)
    assert len(session_keys(redis_client)) == 1

    response = await client.post("/auth/logout", data=urlencoded(csrf=csrf), headers=FORM)
    assert response.status_code == 303
    assert response.headers["Location"] == "/auth/login"
    assert session_keys(redis_client) == []
    assert (await client.get("/admin")).status_code == 303

    # A copy of the cookie kept from before the logout opens nothing any more.
    replay = admin_app.test_client()
    replay.set_cookie("localhost", "ots_admin", cookie)
    again = await replay.get("/admin")
    assert again.status_code == 303
    assert again.headers["Location"] == "/auth/login"
    fragment = await replay.get("/admin/counters", headers=HTMX)
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"] == "/auth/login"


async def test_logout_without_the_csrf_token_is_refused(
    admin_app: Quart, redis_client: redis.Redis
) -> None:
    client = await signed_in(admin_app)
    csrf = await csrf_of(client)
    keys = session_keys(redis_client)
    assert len(keys) == 1

    missing = await client.post("/auth/logout", headers=FORM)
    assert missing.status_code == 403
    wrong = await client.post("/auth/logout", data=urlencoded(csrf="0" * len(csrf)), headers=FORM)
    assert wrong.status_code == 403
    assert session_keys(redis_client) == keys
    assert (await client.get("/admin")).status_code == 200


async def test_sign_out_everywhere_ends_every_session(
    admin_app: Quart, redis_client: redis.Redis
) -> None:
    first = await signed_in(admin_app)
    second = await signed_in(admin_app)
    assert len(session_keys(redis_client)) == 2
    assert (await first.get("/admin")).status_code == 200
    assert (await second.get("/admin")).status_code == 200

    refused = await first.post("/admin/logout-everywhere", headers=FORM)
    assert refused.status_code == 403
    assert len(session_keys(redis_client)) == 2

    response = await first.post(
        "/admin/logout-everywhere", data=urlencoded(csrf=await csrf_of(first)), headers=FORM
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/auth/login"
    assert session_keys(redis_client) == []
    assert (await first.get("/admin")).status_code == 303
    assert (await second.get("/admin")).status_code == 303


async def test_an_expired_session_sends_htmx_fragments_to_login(
    admin_settings: Settings, redis_client: redis.Redis
) -> None:
    short = dataclasses.replace(admin_settings, admin_session_seconds=60)
    async with running_app(short) as application:
        client = await signed_in(application)
        (key,) = session_keys(redis_client)
        assert 0 < redis_client.ttl(key) <= 60
        for path in ADMIN_PANELS:
            assert (await client.get(path, headers=HTMX)).status_code == 200

        redis_client.delete(key)  # what Redis does when the TTL runs out

        for path in ADMIN_PANELS:
            response = await client.get(path, headers=HTMX)
            assert response.status_code == 401, path
            assert response.headers["HX-Redirect"] == "/auth/login"
            assert await response.get_data() == b""
        page = await client.get("/admin")
        assert page.status_code == 303
        assert page.headers["Location"] == "/auth/login"


# --- limits and CSRF -------------------------------------------------------------------


async def test_login_attempts_are_rate_limited(
    admin_settings: Settings, redis_client: redis.Redis
) -> None:
    limited = dataclasses.replace(
        admin_settings,
        rate_limits_enabled=True,
        rate_limits={**admin_settings.rate_limits, "login": parse_limits("5/minute")},
    )
    async with running_app(limited) as application:
        client = application.test_client()
        for _ in range(5):
            assert (await login(client, password="not-the-password")).status_code == 401
        response = await login(client)  # the right password, but over the budget
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers.getlist("Set-Cookie") == []
        assert session_keys(redis_client) == []
        assert (await client.get("/admin")).status_code == 303


async def test_admin_posts_need_the_session_csrf_token(
    admin_app: Quart, admin_settings: Settings, redis_client: redis.Redis
) -> None:
    client = await signed_in(admin_app)
    other = await signed_in(admin_app)
    share = await upload(client, b"keep me", filename="keep.txt")
    share_id = share["id"]
    path = f"/admin/shares/{share_id}/revoke"
    foreign = await csrf_of(other)
    own = await csrf_of(client)
    assert foreign != own

    attempts = [
        urlencoded(confirm="yes"),
        urlencoded(csrf="", confirm="yes"),
        urlencoded(csrf="not-a-token", confirm="yes"),
        urlencoded(csrf=foreign, confirm="yes"),  # another session's token
    ]
    for body in attempts:
        for headers in (FORM, {**FORM, **HTMX}):
            response = await client.post(path, data=body, headers=headers)
            assert response.status_code == 403, (body, headers)

    assert redis_client.exists(f"ots:share:{share_id}") == 1
    assert (admin_settings.blob_dir / f"{share_id}.blob").exists()
    table = await (await client.get("/admin/shares")).get_data(as_text=True)
    assert share_id[:8] in table
    assert (await client.get("/d/" + share["url"].rsplit("/d/", 1)[1])).status_code == 200
