"""Blobs in S3: a real SeaweedFS, and two app instances sharing it and one Redis.

What the store holds is checked with a client of its own (aiobotocore), not through
the app: objects, object versions and unfinished multipart uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis
from aiobotocore.session import get_session
from quart import Quart

from onetimeshare.config import MIB, Settings
from onetimeshare.domain.storage.s3 import PART_BYTES, S3BlobStore
from onetimeshare.process.janitor import Janitor
from onetimeshare.web.app import create_app
from tests.helpers import (
    BROWSER,
    JSON,
    LiveServer,
    LiveServerFactory,
    multipart,
    running_app,
    share_keys,
    token_path,
    upload,
    upload_head,
    wait_until,
    wait_until_async,
)
from tests.sealing import ciphertext_size
from tests.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


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


@pytest.fixture
def versioned_s3_settings(s3_settings: Settings) -> Settings:
    """A bucket that keeps every version ever completed: it shows whether an upload
    was completed before it was deleted, which an object listing cannot."""

    async def enable() -> None:
        async with s3_client(s3_settings) as client:
            await client.put_bucket_versioning(
                Bucket=bucket_of(s3_settings), VersioningConfiguration={"Status": "Enabled"}
            )

    asyncio.run(enable())
    return s3_settings


def store_of(settings: Settings) -> S3BlobStore:
    return S3BlobStore.from_settings(settings)


@contextlib.asynccontextmanager
async def opened_store(settings: Settings) -> AsyncIterator[S3BlobStore]:
    store = store_of(settings)
    try:
        yield store
    finally:
        await store.close()


def bucket_of(settings: Settings) -> str:
    return str(settings.storage_url).removeprefix("s3://").split("/", 1)[0]


@contextlib.asynccontextmanager
async def s3_client(settings: Settings) -> AsyncIterator[S3Client]:
    async with get_session().create_client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        yield client


async def object_keys(settings: Settings) -> list[str]:
    """Object names under the prefix, without it."""
    async with s3_client(settings) as client:
        listing = await client.list_objects_v2(Bucket=bucket_of(settings), Prefix="blobs/")
    return sorted(item["Key"].removeprefix("blobs/") for item in listing.get("Contents", []))


async def unfinished_uploads(settings: Settings) -> list[str]:
    """Object names of the multipart uploads the store holds open under the prefix."""
    async with s3_client(settings) as client:
        listing = await client.list_multipart_uploads(Bucket=bucket_of(settings), Prefix="blobs/")
    return sorted(item["Key"].removeprefix("blobs/") for item in listing.get("Uploads", []))


async def object_versions(settings: Settings) -> list[str]:
    """Every version and delete marker the (versioned) bucket keeps under the prefix."""
    async with s3_client(settings) as client:
        listing = await client.list_object_versions(Bucket=bucket_of(settings), Prefix="blobs/")
    return sorted(
        item["Key"] for item in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
    )


async def etag_of(settings: Settings, name: str) -> str:
    async with s3_client(settings) as client:
        head = await client.head_object(Bucket=bucket_of(settings), Key=f"blobs/{name}")
    return head["ETag"]


async def test_round_trip_stores_only_ciphertext_and_deletes_after_download(
    s3_app: Quart, s3_settings: Settings
) -> None:
    client = s3_app.test_client()
    data = os.urandom(3 * 1024 * 1024 + 5)
    marker = b"PLAINTEXT-IN-S3?" * 1000
    share = await upload(client, marker + data, filename="s3.bin")
    assert await object_keys(s3_settings) == [f"{share['id']}.blob"]
    # Smaller than one part: a single PutObject (a multipart ETag ends in -<parts>).
    assert "-" not in await etag_of(s3_settings, f"{share['id']}.blob")
    async with s3_client(s3_settings) as s3:
        stored = await s3.get_object(Bucket=bucket_of(s3_settings), Key=f"blobs/{share['id']}.blob")
        content = await stored["Body"].read()
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
    async with s3_client(s3_settings) as s3:
        await s3.put_object(
            Bucket=bucket_of(s3_settings), Key=f"blobs/{orphan}", Body=b"stray ciphertext"
        )
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


# --- writing and reading through the store ---------------------------------------------


async def test_big_blob_goes_up_in_parts_and_reads_back_in_batches(s3_settings: Settings) -> None:
    data = os.urandom(2 * PART_BYTES + 12345)
    async with opened_store(s3_settings) as store:
        sink = await store.start("1" * 32, len(data))
        buffer = bytearray(1024 * 1024)
        for offset in range(0, len(data), len(buffer)):
            piece = data[offset : offset + len(buffer)]
            buffer[: len(piece)] = piece
            await sink.write(memoryview(buffer)[: len(piece)])
            buffer[:] = bytes(len(buffer))  # the caller reuses its buffer at once
        assert await object_keys(s3_settings) == []  # visible only once complete
        assert await unfinished_uploads(s3_settings) == [f"{'1' * 32}.blob"]
        await sink.commit()
        assert await unfinished_uploads(s3_settings) == []
        assert (await etag_of(s3_settings, f"{'1' * 32}.blob")).endswith('-3"')

        source = await store.open("1" * 32)
        assert source.size == len(data)
        read = b"".join([await source.process(1024 * 1024, bytes) for _ in range(25)])
        assert await source.process(1024 * 1024, bytes) == b""
        source.close()
    assert read == data


async def test_a_discarded_upload_is_aborted_never_completed(
    versioned_s3_settings: Settings,
) -> None:
    async with opened_store(versioned_s3_settings) as store:
        sink = await store.start("2" * 32, None)
        await sink.write(os.urandom(PART_BYTES + 1000))
        assert await unfinished_uploads(versioned_s3_settings) == [f"{'2' * 32}.blob"]
        await sink.discard()
    assert await unfinished_uploads(versioned_s3_settings) == []
    assert await object_versions(versioned_s3_settings) == []  # never an object, not even once


async def test_only_a_missing_object_is_file_not_found(s3_settings: Settings) -> None:
    async with opened_store(s3_settings) as store:
        with pytest.raises(FileNotFoundError):
            await store.open("3" * 32)
    no_bucket = dataclasses.replace(s3_settings, storage_url="s3://ots-no-such-bucket/blobs")
    unreachable = dataclasses.replace(s3_settings, s3_endpoint="http://127.0.0.1:9")
    for broken in (no_bucket, unreachable):
        async with opened_store(broken) as store:
            with pytest.raises(Exception) as raised:
                await store.open("3" * 32)
        assert not isinstance(raised.value, FileNotFoundError), broken.storage_url


async def test_transfers_held_open_do_not_starve_the_others(s3_settings: Settings) -> None:
    """A download holds its connection while its client reads: more of them than a
    small connection pool would hold must not stop uploads or other downloads."""
    async with opened_store(s3_settings) as store:
        sink = await store.start("4" * 32, 4 * MIB)
        await sink.write(os.urandom(4 * MIB))  # too big to arrive whole with the headers
        await sink.commit()
        held = [await asyncio.wait_for(store.open("4" * 32), 30) for _ in range(16)]
        sink = await store.start("5" * 32, 10)
        await sink.write(b"still works")
        await asyncio.wait_for(sink.commit(), 30)
        for source in held:
            source.close()
    assert await object_keys(s3_settings) == [f"{'4' * 32}.blob", f"{'5' * 32}.blob"]


# --- uploads through the app that do not finish -----------------------------------------


def s3_overrides(settings: Settings) -> dict[str, Any]:
    return {
        "storage_url": settings.storage_url,
        "s3_endpoint": settings.s3_endpoint,
        "s3_access_key": ACCESS_KEY,
        "s3_secret_key": SECRET_KEY,
        "max_upload_bytes": 32 * MIB,
    }


def test_an_upload_refused_mid_stream_leaves_no_upload_and_no_object(
    live_server_factory: LiveServerFactory,
    versioned_s3_settings: Settings,
    redis_client: redis.Redis,
) -> None:
    overrides = {**s3_overrides(versioned_s3_settings), "max_upload_bytes": 12 * MIB}
    server = live_server_factory(workers=1, **overrides)
    body, headers = multipart(file=("big.bin", os.urandom(20 * MIB)))
    saw_upload = False

    def pieces() -> Iterator[bytes]:
        nonlocal saw_upload
        for start in range(0, len(body), MIB):
            if start == 10 * MIB:
                # Chunked, so nothing could be refused up front: the refusal comes when
                # the file passes 12 MiB, with a multipart upload open in the store.
                wait_until(lambda: asyncio.run(unfinished_uploads(versioned_s3_settings)) != [])
                saw_upload = True
            yield body[start : start + MIB]

    response = httpx.post(
        f"{server.base_url}/upload", content=pieces(), headers={**headers, **JSON}, timeout=30
    )
    assert saw_upload
    assert response.status_code == 413
    wait_until(lambda: asyncio.run(unfinished_uploads(versioned_s3_settings)) == [])
    assert asyncio.run(object_versions(versioned_s3_settings)) == []
    assert share_keys(redis_client) == []


def start_big_upload(server: LiveServer, settings: Settings) -> socket.socket:
    """Open an upload of 20 MiB and send 12 of it: a part is in the store by then."""
    body, headers = multipart(file=("big.bin", os.urandom(20 * MIB)))
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    connection.sendall(upload_head(len(body), headers["Content-Type"]) + body[: 12 * MIB])
    wait_until(lambda: asyncio.run(unfinished_uploads(settings)) != [], timeout=15)
    return connection


def test_a_client_gone_mid_upload_leaves_no_upload_and_no_object(
    live_server_factory: LiveServerFactory, versioned_s3_settings: Settings
) -> None:
    server = live_server_factory(workers=1, **s3_overrides(versioned_s3_settings))
    connection = start_big_upload(server, versioned_s3_settings)
    connection.close()

    wait_until(lambda: asyncio.run(unfinished_uploads(versioned_s3_settings)) == [], timeout=15)
    assert asyncio.run(object_versions(versioned_s3_settings)) == []


def test_an_upload_killed_with_its_instance_is_aborted_once_its_mark_lapses(
    live_server_factory: LiveServerFactory, s3_settings: Settings
) -> None:
    server = live_server_factory(
        workers=1, janitor_interval=1, upload_mark_seconds=2, **s3_overrides(s3_settings)
    )
    small, big = os.urandom(700_000), os.urandom(17 * MIB)
    kept = []
    for data in (small, big):
        body, headers = multipart(file=("kept.bin", data))
        created = httpx.post(
            f"{server.base_url}/upload", content=body, headers={**headers, **JSON}, timeout=30
        )
        assert created.status_code == 201
        kept.append(created.json())
    kept_names = sorted(f"{share['id']}.blob" for share in kept)

    connection = start_big_upload(server, s3_settings)
    [abandoned] = asyncio.run(unfinished_uploads(s3_settings))
    server.kill()  # SIGKILL: no handler, no clean-up
    connection.close()
    assert asyncio.run(unfinished_uploads(s3_settings)) == [abandoned], "nothing cleans after it"

    server.start()  # the same Redis and bucket

    def aborted() -> bool:
        assert asyncio.run(object_keys(s3_settings)) == kept_names, "a live share was harmed"
        return asyncio.run(unfinished_uploads(s3_settings)) == []

    # The upload mark lapses (2 s), and a janitor lock the killed instance held (10 s).
    wait_until(aborted, timeout=30, interval=0.2)
    for share, data in zip(kept, (small, big), strict=True):
        response = httpx.post(str(share["url"]), headers=BROWSER, timeout=30)
        assert response.status_code == 200
        assert response.content == data
    server.stop()
    records = [json.loads(line) for line in server.log_path.read_text().splitlines() if line]
    janitor_events = [record for record in records if record.get("event") == "janitor"]
    assert sum(record["uploads_aborted"] for record in janitor_events) == 1


async def test_janitor_aborts_only_old_unfinished_uploads_nobody_knows(
    s3_app: Quart, s3_settings: Settings
) -> None:
    services = s3_app.extensions["onetimeshare"]
    live = await upload(s3_app.test_client(), b"live in s3")
    marked, unknown = "6" * 32, "7" * 32
    await services.metadata.mark_uploading(marked, 60)
    async with s3_client(s3_settings) as s3:
        for share_id in (live["id"], marked, unknown):
            await s3.create_multipart_upload(
                Bucket=bucket_of(s3_settings), Key=f"blobs/{share_id}.blob"
            )
    every = sorted(f"{share_id}.blob" for share_id in (live["id"], marked, unknown))

    # Younger than an upload mark lives (15 s here): left alone, known or not.
    report = await services.janitor.run_once()
    assert report is not None and report.uploads_aborted == 0
    assert await unfinished_uploads(s3_settings) == every

    # Old enough: only the upload Redis knows nothing of goes.
    janitor = Janitor(services.metadata, services.blobs, 3600, upload_mark_seconds=0)
    report = await janitor.run_once()
    assert report is not None and report.uploads_aborted == 1
    assert await unfinished_uploads(s3_settings) == sorted(
        f"{share_id}.blob" for share_id in (live["id"], marked)
    )
    last = await services.metadata.redis.hgetall("ots:janitor:last")
    assert last[b"uploads_aborted"] == b"1"
    assert await (await s3_app.test_client().post(token_path(live))).get_data() == b"live in s3"


async def test_unfinished_uploads_are_listed_across_pages(s3_settings: Settings) -> None:
    share_ids = [f"{digit}" * 32 for digit in "89abc"]
    async with s3_client(s3_settings) as s3:
        for share_id in share_ids:
            await s3.create_multipart_upload(
                Bucket=bucket_of(s3_settings), Key=f"blobs/{share_id}.blob"
            )
    async with opened_store(s3_settings) as store:
        listed = await store.list_unfinished(page_size=2)
        assert sorted(item.share_id for item in listed) == share_ids
        for item in listed:
            await store.abort_unfinished(item)
    assert await unfinished_uploads(s3_settings) == []
