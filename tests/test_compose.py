"""docker-compose.yml as shipped, without a container engine: its SeaweedFS command and its
app environment, read from the file, run as local processes.

Also the object store's start-up: a missing bucket is created (by ``serve``, before any
worker), one these credentials may not use stops ``serve`` and fails ``check`` with the
same message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from onetimeshare.config import Settings
from onetimeshare.domain.storage import StoreUnreachable
from onetimeshare.process.preflight import prepare_storage
from tests.conftest import LiveServer, free_port
from tests.helpers import BROWSER_AGENT, JSON, multipart, run_command, serve_until_exit, token_path
from tests.seaweedfs import SeaweedFS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
# What an operator puts in .env beside the compose file; the rest keeps its defaults.
OPERATOR_ENV = {"SECRET_KEY": "compose-test-secret-" + "k" * 40}
SEAWEED_S3_PORT = 8333  # weed's default S3 port, which the compose command does not change
# Settings of ours that the test environment must not leak into a started process.
NOT_INHERITED = (
    "REDIS_URL",
    "SECRET_KEY",
    "HOST",
    "PORT",
    "STORAGE_URL",
    "ADMIN_USER",
    "ADMIN_PASSWORD",
    "ADMIN_PASSWORD_HASH",
    "TRUSTED_PROXY_HOPS",
    "BLOCK_CLI_AGENTS",
)


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


def process_environment(**settings: str) -> dict[str, str]:
    """This machine's environment without any setting of ours, plus these settings."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OTS_") and name not in NOT_INHERITED
    }
    return {**inherited, **settings}


class ComposeApp(LiveServer):
    """An app service of the compose file: its environment, its /data volume a directory."""

    def __init__(self, settings: Settings, environment: dict[str, str]) -> None:
        super().__init__(settings, workers=1, extra_env={})
        self._environment = environment

    def environment(self) -> dict[str, str]:
        return process_environment(**self._environment, OTS_DATA_DIR=str(self.settings.data_dir))


@pytest.fixture(scope="module")
def compose_seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """The compose file's seaweedfs service: its command, a fresh volume, no bucket."""
    command = tuple(COMPOSE["services"]["seaweedfs"]["command"])
    server = SeaweedFS(tmp_path_factory.mktemp("compose-seaweedfs"), command)
    yield server
    server.stop()


async def bucket_state(endpoint: str, bucket: str, access_key: str, secret_key: str) -> int:
    """The store's answer to HEAD bucket, as an HTTP status."""
    async with get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
    ) as client:
        try:
            await client.head_bucket(Bucket=bucket)
        except ClientError as error:
            return int(error.response["ResponseMetadata"]["HTTPStatusCode"])
    return 200


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
        downloaded = httpx.post(f"{second.base_url}{path}", headers=BROWSER_AGENT, timeout=30)
        assert downloaded.status_code == 200
        assert downloaded.content == data
        again = httpx.post(f"{first.base_url}{path}", headers={**BROWSER_AGENT, **JSON})
        assert again.status_code == 410 and again.json()["reason"] == "downloaded"
        assert all("Traceback" not in app.log_path.read_text() for app in apps)
    finally:
        for app in apps:
            app.stop()


# --- check and serve against object stores ------------------------------------------------


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_command("check", env=env)


def s3_environment(tmp_path: Path, endpoint: str, bucket: str, **more: str) -> dict[str, str]:
    settings = {
        "OTS_DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": OPERATOR_ENV["SECRET_KEY"],
        "STORAGE_URL": f"s3://{bucket}/blobs",
        "OTS_S3_ENDPOINT": endpoint,
        "OTS_S3_ACCESS_KEY": "tests",
        "OTS_S3_SECRET_KEY": "tests-secret",
    }
    return process_environment(**{**settings, **more})


def test_check_finds_a_missing_bucket_and_leaves_it_to_serve(
    compose_seaweedfs: SeaweedFS, tmp_path: Path, redis_url: str
) -> None:
    compose_seaweedfs.start()  # a no-op if the compose test already started it
    bucket = f"ots-check-{secrets.token_hex(4)}"
    result = run_check(
        s3_environment(tmp_path, compose_seaweedfs.endpoint, bucket, REDIS_URL=redis_url)
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"storage: ok, bucket {bucket} at {compose_seaweedfs.endpoint} does not exist yet: "
        "serve will create it" in result.stdout.splitlines()
    )
    assert f"redis: ok, {redis_url} answers" in result.stdout
    # Nothing was created: not the bucket, not the data directory.
    status = asyncio.run(bucket_state(compose_seaweedfs.endpoint, bucket, "tests", "tests-secret"))
    assert status == 404
    assert not (tmp_path / "data").exists()


def test_check_reports_an_object_store_that_does_not_answer(tmp_path: Path, redis_url: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_check(s3_environment(tmp_path, endpoint, "ots-nowhere", REDIS_URL=redis_url))
    assert result.returncode == 1
    assert f"onetimeshare: storage: the object store at {endpoint} does not answer" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


# A store with accounts: its owner's; one that may only read a bucket of its own; one that
# may read and write any bucket but create none.
OWNER = {"accessKey": "owner-key", "secretKey": "owner-secret"}
READER = {"accessKey": "reader-key", "secretKey": "reader-secret"}
WRITER = {"accessKey": "writer-key", "secretKey": "writer-secret"}
OTHERS_BUCKET = "someone-elses"
DENIED = (
    "access to the bucket {bucket} at {endpoint} is denied: it belongs to another account, "
    "or these credentials (OTS_S3_ACCESS_KEY) may not use it (nor create it, if it is missing)"
)
NOT_CREATED = (
    "the bucket {bucket} does not exist at {endpoint} and these credentials may not create "
    "it: create it, or allow s3:CreateBucket"
)


@pytest.fixture(scope="module")
def guarded_seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    directory = tmp_path_factory.mktemp("guarded-seaweedfs")
    config = directory / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "owner",
                        "credentials": [OWNER],
                        "actions": ["Admin", "Read", "Write", "List"],
                    },
                    {"name": "reader", "credentials": [READER], "actions": ["Read:own"]},
                    {
                        "name": "writer",
                        "credentials": [WRITER],
                        "actions": ["Read", "Write", "List"],
                    },
                ]
            }
        )
    )
    server = SeaweedFS(directory / "data", s3_config=config)
    server.start()

    async def create() -> None:
        async with get_session().create_client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=OWNER["accessKey"],
            aws_secret_access_key=OWNER["secretKey"],
        ) as client:
            await client.create_bucket(Bucket=OTHERS_BUCKET)

    asyncio.run(create())
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("account", "bucket", "message"),
    [
        (READER, OTHERS_BUCKET, DENIED),
        (WRITER, "not-there-yet", NOT_CREATED),
    ],
    ids=["not-ours", "may-not-create"],
)
def test_a_bucket_the_credentials_may_not_use_stops_serve_and_fails_check(
    guarded_seaweedfs: SeaweedFS,
    tmp_path: Path,
    redis_url: str,
    account: dict[str, str],
    bucket: str,
    message: str,
) -> None:
    env = s3_environment(
        tmp_path,
        guarded_seaweedfs.endpoint,
        bucket,
        REDIS_URL=redis_url,
        OTS_S3_ACCESS_KEY=account["accessKey"],
        OTS_S3_SECRET_KEY=account["secretKey"],
    )
    expected = "onetimeshare: storage: " + message.format(
        bucket=bucket, endpoint=guarded_seaweedfs.endpoint
    )
    served = serve_until_exit(env)
    checked = run_check(env)
    assert served.returncode == 1
    assert expected in served.stderr.splitlines(), served.stderr
    if account is WRITER:  # check creates nothing, so only serve can find this out
        assert checked.returncode == 0
        assert "does not exist yet: serve will create it" in checked.stdout
    else:
        assert checked.returncode == 1
        assert expected in checked.stderr.splitlines(), checked.stderr
    assert "Traceback" not in served.stderr + checked.stderr
    status = asyncio.run(
        bucket_state(guarded_seaweedfs.endpoint, bucket, OWNER["accessKey"], OWNER["secretKey"])
    )
    assert status == (200 if bucket == OTHERS_BUCKET else 404)  # nothing was created


def test_serve_gives_up_on_a_store_that_never_answers(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = Settings.from_env(s3_environment(tmp_path, endpoint, "ots-nowhere"))
    with pytest.raises(StoreUnreachable) as refused:
        prepare_storage(settings, wait_seconds=0.5)
    assert str(refused.value).startswith(f"the object store at {endpoint} does not answer (")
