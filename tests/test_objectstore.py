"""Blobs in S3: a real SeaweedFS, and two app instances sharing it and one Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import obstore
import pytest
from quart import Quart

from app import create_app
from app.config import Settings
from app.crypto import ciphertext_size
from app.objectstore import S3BlobStore
from tests.conftest import LiveServerFactory
from tests.helpers import (
    JSON,
    multipart,
    running_app,
    share_keys,
    token_path,
    upload,
    wait_until,
    wait_until_async,
)
from tests.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) tests"}


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_settings(settings: Settings, seaweedfs: SeaweedFS) -> Settings:
    bucket = f"ots-{secrets.token_hex(4)}"
    seaweedfs.create_bucket(bucket)
    return dataclasses.replace(
        settings,
        storage_url=f"s3://{bucket}/blobs",
        s3_endpoint=seaweedfs.endpoint,
        s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY,
    )


@pytest.fixture
async def s3_app(s3_settings: Settings) -> AsyncIterator[Quart]:
    async with running_app(s3_settings) as application:
        yield application


def store_of(settings: Settings) -> S3BlobStore:
    return S3BlobStore(
        str(settings.storage_url),
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        region=settings.s3_region,
    )


async def object_keys(settings: Settings) -> list[str]:
    return sorted(stored.key for stored in await store_of(settings).list_stored())


async def test_round_trip_stores_only_ciphertext_and_deletes_after_download(
    s3_app: Quart, s3_settings: Settings
) -> None:
    client = s3_app.test_client()
    data = os.urandom(3 * 1024 * 1024 + 5)
    marker = b"PLAINTEXT-IN-S3?" * 1000
    share = await upload(client, marker + data, filename="s3.bin")
    assert await object_keys(s3_settings) == [f"{share['id']}.blob"]
    stored = await obstore.get_async(store_of(s3_settings).client, f"{share['id']}.blob")
    content = bytes(await stored.bytes_async())
    assert len(content) == ciphertext_size(len(marker + data), 64 * 1024)
    assert b"PLAINTEXT-IN-S3?" not in content
    assert not (s3_settings.blob_dir.exists() and any(s3_settings.blob_dir.iterdir()))

    response = await client.post(token_path(share))
    assert await response.get_data() == marker + data
    assert (await client.post(token_path(share))).status_code == 410

    async def deleted() -> bool:
        return await object_keys(s3_settings) == []

    await wait_until_async(deleted, timeout=5)


async def test_refused_and_revoked_uploads_leave_no_object(
    s3_app: Quart, s3_settings: Settings, redis_client: object
) -> None:
    client = s3_app.test_client()
    body, headers = multipart(file=("big.bin", os.urandom(s3_settings.max_upload_bytes + 1)))
    response = await client.post("/upload", data=body, headers={**headers, **JSON})
    assert response.status_code == 413
    assert await object_keys(s3_settings) == []
    assert share_keys(redis_client) == []  # type: ignore[arg-type]

    share = await upload(client, b"revoke me")
    revoke = "/r/" + share["revoke_url"].rsplit("/r/", 1)[1]
    assert (await client.post(revoke)).status_code == 303
    assert await object_keys(s3_settings) == []


async def test_janitor_sweeps_orphans_in_the_bucket_and_keeps_live_blobs(
    s3_app: Quart, s3_settings: Settings
) -> None:
    client = s3_app.test_client()
    live = await upload(client, b"live in s3")
    orphan = f"{'e' * 32}.blob"
    await obstore.put_async(store_of(s3_settings).client, orphan, b"stray ciphertext")
    assert await object_keys(s3_settings) == sorted([orphan, f"{live['id']}.blob"])

    report = await s3_app.extensions["onetimeshare"].janitor.run_once()
    assert report is not None and report.blobs_removed == 1
    assert await object_keys(s3_settings) == [f"{live['id']}.blob"]
    assert await (await client.post(token_path(live))).get_data() == b"live in s3"


async def test_health_reports_an_unreachable_store(s3_settings: Settings) -> None:
    broken = dataclasses.replace(s3_settings, s3_endpoint="http://127.0.0.1:9")
    application = create_app(broken)
    async with application.test_app():
        response = await application.test_client().get("/healthz")
    assert response.status_code == 503
    assert (await response.get_json())["storage"] is False


def test_two_instances_share_redis_and_the_bucket(
    live_server_factory: LiveServerFactory, s3_settings: Settings
) -> None:
    overrides = {
        "storage_url": s3_settings.storage_url,
        "s3_endpoint": s3_settings.s3_endpoint,
        "s3_access_key": ACCESS_KEY,
        "s3_secret_key": SECRET_KEY,
    }
    first = live_server_factory(workers=1, **overrides)
    second = live_server_factory(
        workers=1, data_dir=s3_settings.data_dir.parent / "second", **overrides
    )

    data = os.urandom(2 * 1024 * 1024)
    body, headers = multipart(file=("shared.bin", data))
    created = httpx.post(f"{first.base_url}/upload", content=body, headers={**headers, **JSON})
    assert created.status_code == 201
    path = token_path(created.json())
    landing = httpx.get(f"{second.base_url}{path}", headers=BROWSER)
    assert landing.status_code == 200 and "shared.bin" in landing.text
    downloaded = httpx.post(f"{second.base_url}{path}", headers=BROWSER)
    assert downloaded.content == data
    assert httpx.post(f"{first.base_url}{path}", headers=BROWSER).status_code == 410

    body, headers = multipart(file=("raced.bin", data))
    raced = token_path(
        httpx.post(f"{second.base_url}/upload", content=body, headers={**headers, **JSON}).json()
    )

    async def race() -> list[int]:
        async with httpx.AsyncClient(timeout=30, headers=BROWSER) as client:
            answers = await asyncio.gather(
                *(
                    client.post(f"{server.base_url}{raced}")
                    for _ in range(8)
                    for server in (first, second)
                )
            )
        return sorted(answer.status_code for answer in answers)

    assert asyncio.run(race()) == [200] + [410] * 15

    async def bucket_empty() -> bool:
        return await object_keys(s3_settings) == []

    wait_until(lambda: asyncio.run(bucket_empty()), timeout=10)
    assert not Path(first.settings.blob_dir).exists() or not any(
        Path(first.settings.blob_dir).iterdir()
    )
