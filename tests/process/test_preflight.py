"""Start-up against object stores (app/process/preflight.py), through ``check`` and
``serve`` with a real SeaweedFS: a missing bucket is left for ``serve`` to create, a store
that does not answer and a bucket these credentials may not use stop ``serve`` and fail
``check`` with the same message.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from onetimeshare.config import Settings
from onetimeshare.domain.storage import StoreUnreachable
from onetimeshare.process.preflight import prepare_storage
from tests.helpers import STRONG_KEY, clean_environment, free_port, run_command, serve_until_exit
from tests.seaweedfs import SeaweedFS


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


def s3_environment(tmp_path: Path, endpoint: str, bucket: str, **more: str) -> dict[str, str]:
    settings = {
        "OTS_DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": STRONG_KEY,
        "STORAGE_URL": f"s3://{bucket}/blobs",
        "OTS_S3_ENDPOINT": endpoint,
        "OTS_S3_ACCESS_KEY": "tests",
        "OTS_S3_SECRET_KEY": "tests-secret",
    }
    return clean_environment(**{**settings, **more})


def test_check_finds_a_missing_bucket_and_leaves_it_to_serve(
    seaweedfs: SeaweedFS, tmp_path: Path, redis_url: str
) -> None:
    bucket = f"ots-check-{secrets.token_hex(4)}"
    result = run_command(
        "check", env=s3_environment(tmp_path, seaweedfs.endpoint, bucket, REDIS_URL=redis_url)
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"storage: ok, bucket {bucket} at {seaweedfs.endpoint} does not exist yet: "
        "serve will create it" in result.stdout.splitlines()
    )
    assert f"redis: ok, {redis_url} answers" in result.stdout
    # Nothing was created: not the bucket, not the data directory.
    status = asyncio.run(bucket_state(seaweedfs.endpoint, bucket, "tests", "tests-secret"))
    assert status == 404
    assert not (tmp_path / "data").exists()


def test_check_reports_an_object_store_that_does_not_answer(tmp_path: Path, redis_url: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_command(
        "check", env=s3_environment(tmp_path, endpoint, "ots-nowhere", REDIS_URL=redis_url)
    )
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
    checked = run_command("check", env=env)
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
