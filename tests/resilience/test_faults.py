"""Faults against real processes: Redis dying mid-upload, the app killed mid-upload, a disk
that really fills up, and the free-space floor.

Every fault must end in a clear answer (503, 507) or a clean recovery, with no partial
files left behind and no live share harmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import resource
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import MIB, Settings
from onetimeshare.process.embedded_redis import EmbeddedRedis
from onetimeshare.process.janitor import LOCK_SECONDS
from onetimeshare.web.app import create_app
from onetimeshare.web.messages import SENTENCES
from tests.helpers import (
    JSON,
    LiveServer,
    LiveServerFactory,
    download_live,
    files_in,
    json_error,
    multipart,
    read_one_response,
    share_keys,
    upload_head,
    upload_live,
    wait_until,
)

FILE_SIZE_LIMIT = 8 * MIB
SWEPT_AFTER_A_KILL = LOCK_SECONDS + 15
DISK_FULL_MESSAGE = SENTENCES["storage_full"]()


def partial_files(directory: Path) -> list[str]:
    return [name for name in files_in(directory) if name.endswith(".part")]


def healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


# --- Redis dies mid-upload ----------------------------------------------------------------


def test_redis_killed_mid_upload_is_503_and_the_service_recovers(
    live_server_factory: LiveServerFactory, own_redis: EmbeddedRedis
) -> None:
    server = live_server_factory(workers=1, redis_url=own_redis.url)
    blob_dir = server.settings.blob_dir
    body, headers = multipart(file=("big.bin", os.urandom(6 * MIB)))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(upload_head(len(body), headers["Content-Type"]) + body[: 3 * MIB])
        wait_until(lambda: partial_files(blob_dir) != [])
        own_redis.stop()
        assert not own_redis.answers()
        connection.sendall(body[3 * MIB :])
        status, response_headers, answer = read_one_response(connection)

    assert status == 503
    assert response_headers["content-type"] == "application/json"
    assert response_headers["retry-after"] == "30"
    error = json_error(answer, "unavailable")
    assert "try again" in error["error"]
    wait_until(lambda: files_in(blob_dir) == [], timeout=5)

    own_redis.ensure_running()  # the same app, no restart: it must reconnect on its own
    wait_until(lambda: healthy(server.base_url), timeout=15, interval=0.1)
    data = os.urandom(MIB + 5)
    share = upload_live(server.base_url, data)
    response = download_live(str(share["url"]))
    assert response.status_code == 200
    assert response.content == data
    wait_until(lambda: files_in(blob_dir) == [])


# --- the app dies mid-upload --------------------------------------------------------------


def test_app_killed_mid_upload_sweeps_the_part_and_keeps_live_shares(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(workers=1, janitor_interval=1, upload_mark_seconds=2)
    blob_dir = server.settings.blob_dir
    kept = os.urandom(700_000)
    share = upload_live(server.base_url, kept, "kept.bin")
    kept_blob = blob_dir / f"{share['id']}.blob"
    assert kept_blob.exists()

    body, headers = multipart(file=("big.bin", os.urandom(6 * MIB)))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(upload_head(len(body), headers["Content-Type"]) + body[: 3 * MIB])
        wait_until(lambda: partial_files(blob_dir) != [])
        [part_name] = partial_files(blob_dir)
        server.kill()  # SIGKILL: no handler, no cleanup
    part = blob_dir / part_name
    assert part.exists(), "nothing can clean up after SIGKILL"
    assert part_name != kept_blob.name.replace(".blob", ".part")

    server.start()  # same data directory, same Redis

    def part_swept() -> bool:
        assert kept_blob.exists(), "the janitor removed a live share's blob"
        return not part.exists()

    # The mark lapses (2 s); a janitor lock the killed process held lapses in 10 s.
    wait_until(part_swept, timeout=SWEPT_AFTER_A_KILL, interval=0.05)
    assert files_in(blob_dir) == [kept_blob.name]

    response = download_live(str(share["url"]))
    assert response.status_code == 200
    assert response.content == kept
    assert response.headers["content-length"] == str(len(kept))


# --- a disk that really fills up ----------------------------------------------------------


def limit_file_size() -> None:
    """Runs in the child before exec: writes past FILE_SIZE_LIMIT fail with EFBIG."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


@pytest.fixture
def cramped_server(settings: Settings) -> Iterator[LiveServer]:
    """``onetimeshare serve`` whose files cannot grow past 8 MiB (Python ignores SIGXFSZ)."""
    server = LiveServer(dataclasses.replace(settings, max_upload_bytes=32 * MIB), 1, {})
    server.start(preexec_fn=limit_file_size)
    try:
        yield server
    finally:
        server.stop()


def post_while_reading(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send a request from a thread while reading the answer, which may come before the
    server has read the whole body (it then closes the connection on the rest)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:

        def send() -> None:
            # The server may answer early and close on the rest: expected.
            with contextlib.suppress(OSError):
                connection.sendall(request)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            return read_one_response(connection)
        finally:
            connection.shutdown(socket.SHUT_RDWR)
            sender.join(timeout=10)


def test_disk_full_for_real_is_507_and_leaves_nothing(
    cramped_server: LiveServer, redis_client: redis.Redis
) -> None:
    blob_dir = cramped_server.settings.blob_dir
    body, headers = multipart(file=("twelve.bin", os.urandom(12 * MIB)))
    status, response_headers, answer = post_while_reading(
        cramped_server.port, upload_head(len(body), headers["Content-Type"]) + body
    )
    assert status == 507, answer
    assert response_headers["content-type"] == "application/json"
    error = json_error(answer, "storage_full")
    assert error["error"] == DISK_FULL_MESSAGE
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == []

    assert cramped_server.process is not None and cramped_server.process.poll() is None
    data = os.urandom(MIB)
    share = upload_live(cramped_server.base_url, data)
    assert share["size"] == MIB
    response = download_live(str(share["url"]))
    assert response.status_code == 200
    assert response.content == data
    wait_until(lambda: files_in(blob_dir) == [])


# --- the free-space floor -----------------------------------------------------------------


def free_bytes(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


async def test_declared_upload_below_the_floor_is_507_before_the_body(
    settings: Settings, redis_client: redis.Redis
) -> None:
    floor = free_bytes(settings.blob_dir) - 2 * MIB
    app = create_app(dataclasses.replace(settings, min_free_bytes=floor))
    body, headers = multipart(file=("eight.bin", os.urandom(8 * MIB)))
    async with app.test_app():
        client: QuartClient = app.test_client()
        async with client.request(
            "/upload",
            method="POST",
            headers={**headers, **JSON, "Content-Length": str(len(body))},
        ) as connection:
            await connection.send(body[: 64 * 1024])  # the rest is never sent
            answer = await asyncio.wait_for(connection.receive(), timeout=10)
            assert connection.status_code == 507
    json_error(answer, "storage_full")
    assert json.loads(answer)["error"] == DISK_FULL_MESSAGE
    assert files_in(settings.blob_dir) == []
    assert share_keys(redis_client) == []


def test_chunked_upload_crossing_the_floor_is_507_mid_stream(
    live_server_factory: LiveServerFactory, settings: Settings, redis_client: redis.Redis
) -> None:
    floor = free_bytes(settings.blob_dir) - 2 * MIB
    server = live_server_factory(workers=1, min_free_bytes=floor)
    blob_dir = server.settings.blob_dir
    body, headers = multipart(file=("six.bin", os.urandom(6 * MIB)))
    saw_part = False

    def pieces() -> Iterator[bytes]:
        nonlocal saw_part
        for start in range(0, len(body), 256 * 1024):
            if start == 1536 * 1024:
                # Accepted at the start (no Content-Length: nothing to refuse up front), so
                # a refusal from here on comes from the written file crossing the floor.
                wait_until(lambda: partial_files(blob_dir) != [])
                saw_part = True
            yield body[start : start + 256 * 1024]

    try:
        response = httpx.post(
            f"{server.base_url}/upload",
            content=pieces(),
            headers={**headers, **JSON},
            timeout=30,
        )
    finally:
        server.stop()
    assert saw_part
    assert "content-length" not in {key.lower() for key in response.request.headers}
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 507, response.text
    error = json_error(response.content, "storage_full")
    assert error["error"] == DISK_FULL_MESSAGE
    assert files_in(blob_dir) == []
    assert share_keys(redis_client) == []
