"""The janitor removes only what nothing refers to, and never a live share's blob."""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis
from quart import Quart
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.process.janitor import LOCK_SECONDS, Janitor
from onetimeshare.services import Services
from onetimeshare.web.app import create_app
from tests.helpers import token_path, upload, wait_until


def services_of(app: Quart) -> Services:
    return app.extensions["onetimeshare"]  # type: ignore[no-any-return]


async def test_sweep_keeps_live_and_uploading_files_and_removes_orphans(
    app: Quart, client: QuartClient, blob_dir: Path
) -> None:
    live = await upload(client, b"live share")
    uploading_id = "a" * 32
    await services_of(app).metadata.mark_uploading(uploading_id, 60)
    (blob_dir / f"{uploading_id}.part").write_bytes(b"in progress")
    orphan_blob = blob_dir / f"{'b' * 32}.blob"
    orphan_part = blob_dir / f"{'c' * 32}.part"
    unrelated = blob_dir / "not-a-blob.txt"
    for path in (orphan_blob, orphan_part, unrelated):
        path.write_bytes(b"x")

    report = await services_of(app).janitor.run_once()

    assert report is not None
    assert (report.files_seen, report.blobs_removed, report.parts_removed) == (4, 1, 1)
    assert sorted(path.name for path in blob_dir.iterdir()) == sorted(
        [f"{live['id']}.blob", f"{uploading_id}.part", "not-a-blob.txt"]
    )
    assert await (await client.post(token_path(live))).get_data() == b"live share"


async def test_a_pass_is_skipped_while_another_holds_the_lock(app: Quart) -> None:
    services = services_of(app)
    other = Janitor(services.metadata, services.blobs, interval=3600, upload_mark_seconds=15)
    owner = await services.metadata.acquire_lock("janitor", 30)
    assert owner is not None
    assert await other.run_once() is None
    await services.metadata.release_lock("janitor", owner)
    assert await other.run_once() is not None


async def test_a_lock_left_by_a_killed_janitor_lapses_within_seconds(
    app: Quart, redis_client: redis.Redis
) -> None:
    """An instance killed mid-pass never releases its lock; nobody renews it either."""
    services = services_of(app)
    other = Janitor(services.metadata, services.blobs, interval=3600, upload_mark_seconds=15)
    dead_owner = await services.metadata.acquire_lock("janitor", LOCK_SECONDS)
    assert dead_owner is not None
    assert await other.run_once() is None
    assert 0 < redis_client.pttl("ots:janitor:lock") <= LOCK_SECONDS * 1000
    wait_until(lambda: not redis_client.exists("ots:janitor:lock"), timeout=LOCK_SECONDS + 5)
    assert await other.run_once() is not None


async def test_restart_keeps_live_blobs(settings: Settings, redis_client: redis.Redis) -> None:
    first = create_app(settings)
    async with first.test_app():
        share = await upload(first.test_client(), b"survives restarts")
    blob = settings.blob_dir / f"{share['id']}.blob"
    assert blob.exists()

    started = time.time()
    second = create_app(settings)
    async with second.test_app():
        await services_of(second).janitor.started.wait()
        assert float(redis_client.hget("ots:janitor:last", "finished_at") or 0) >= started
        assert blob.exists()
        response = await second.test_client().post(token_path(share))
        assert await response.get_data() == b"survives restarts"


async def test_abandoned_part_from_a_crash_is_removed_at_start_up(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings.blob_dir.mkdir(parents=True)
    leftover = settings.blob_dir / f"{'d' * 32}.part"
    leftover.write_bytes(os.urandom(1000))
    app = create_app(settings)
    async with app.test_app():
        await services_of(app).janitor.started.wait()
    assert not leftover.exists()
    assert redis_client.hget("ots:janitor:last", "parts_removed") == b"1"
