"""docker-compose.yml as shipped, without a container engine: its SeaweedFS command and its
app environment, read from the file, run as local processes. Both apps start at once with
no bucket: the first creates it (by ``serve``, before any worker), and a share uploaded to
one is downloaded from the other.

``check`` and ``serve`` against other object stores are in tests/process/test_preflight.py.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from onetimeshare.config import Settings
from tests.helpers import (
    BROWSER,
    JSON,
    REPO_ROOT,
    LiveServer,
    clean_environment,
    multipart,
    token_path,
)
from tests.seaweedfs import SeaweedFS

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
# What an operator puts in .env beside the compose file; the rest keeps its defaults.
OPERATOR_ENV = {"SECRET_KEY": "compose-test-secret-" + "k" * 40}
SEAWEED_S3_PORT = 8333  # weed's default S3 port, which the compose command does not change


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} forms, and $$."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group("name"), match.group("op"), match.group("arg")
        value = variables.get(name, "")
        if value:
            return value
        if operator == ":?":
            raise AssertionError(f"compose needs {name}: {argument}")
        return argument or ""

    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}", replace, value)


def app_environment(service: str) -> dict[str, str]:
    environment = COMPOSE["services"][service]["environment"]
    return {name: interpolate(str(value), OPERATOR_ENV) for name, value in environment.items()}


class ComposeApp(LiveServer):
    """An app service of the compose file: its environment, its /data volume a directory."""

    def __init__(self, settings: Settings, environment: dict[str, str]) -> None:
        super().__init__(settings, workers=1, extra_env={})
        self._environment = environment

    def environment(self) -> dict[str, str]:
        return clean_environment(**self._environment, OTS_DATA_DIR=str(self.settings.data_dir))


@pytest.fixture(scope="module")
def compose_seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """The compose file's seaweedfs service: its command, a fresh volume, no bucket."""
    command = tuple(COMPOSE["services"]["seaweedfs"]["command"])
    server = SeaweedFS(tmp_path_factory.mktemp("compose-seaweedfs"), command)
    yield server
    server.stop()


def test_the_compose_set_up_creates_its_bucket_and_shares_across_both_apps(
    compose_seaweedfs: SeaweedFS, settings: Settings, redis_url: str
) -> None:
    services = COMPOSE["services"]
    first_env, second_env = app_environment("app1"), app_environment("app2")
    assert first_env == second_env  # one shared definition (the x-app anchor)
    endpoint = urlsplit(first_env["OTS_S3_ENDPOINT"])
    # The apps reach SeaweedFS by its service name, on the S3 port its command serves.
    assert endpoint.hostname == "seaweedfs" and "seaweedfs" in services
    assert endpoint.port == SEAWEED_S3_PORT
    assert not any(arg.startswith("-s3.port=") for arg in services["seaweedfs"]["command"])
    assert set(services["app1"]["depends_on"]) == {"redis", "seaweedfs"}
    bucket = urlsplit(first_env["STORAGE_URL"]).netloc

    # As `docker compose up` does: the store and both apps start at once, and nothing
    # creates the bucket beforehand. Only the addresses are this machine's.
    local = {"REDIS_URL": redis_url, "OTS_S3_ENDPOINT": compose_seaweedfs.endpoint}
    apps = [
        ComposeApp(
            dataclasses.replace(settings, data_dir=settings.data_dir.parent / f"{name}-data"),
            {**app_environment(name), **local},
        )
        for name in ("app1", "app2")
    ]
    compose_seaweedfs.start(wait=False)
    try:
        with ThreadPoolExecutor(len(apps)) as pool:
            list(pool.map(LiveServer.start, apps))
        first, second = apps
        logs = [app.log_path.read_text() for app in apps]
        assert any(f"created the bucket {bucket}" in log for log in logs), logs

        data = os.urandom(3 * 1024 * 1024 + 7)
        body, headers = multipart(file=("compose.bin", data))
        created = httpx.post(
            f"{first.base_url}/upload", content=body, headers={**headers, **JSON}, timeout=30
        )
        assert created.status_code == 201, created.text
        # Links come from OTS_PUBLIC_URL, as the compose file sets it behind its proxy.
        assert created.json()["url"].startswith(first_env["OTS_PUBLIC_URL"] + "/d/")
        path = token_path(created.json())
        downloaded = httpx.post(f"{second.base_url}{path}", headers=BROWSER, timeout=30)
        assert downloaded.status_code == 200
        assert downloaded.content == data
        again = httpx.post(f"{first.base_url}{path}", headers={**BROWSER, **JSON})
        assert again.status_code == 410 and again.json()["reason"] == "downloaded"
        assert all("Traceback" not in app.log_path.read_text() for app in apps)
    finally:
        for app in apps:
            app.stop()
