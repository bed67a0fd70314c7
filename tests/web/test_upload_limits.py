"""Slow and parallel uploads cannot hold the server: a cap on upload requests in flight per
client, and a minimum average rate once a grace period is over. Real server, raw sockets."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from onetimeshare.domain.keys import UPLOAD_SLOTS as SLOTS_PREFIX
from onetimeshare.web.clients import ClientKeys
from tests.conftest import LiveServer, LiveServerFactory
from tests.helpers import (
    BOUNDARY,
    BROWSER,
    JSON,
    TEST_SECRET_KEY,
    multipart,
    read_one_response,
    share_keys,
    wait_until,
)

# One trusted proxy, so each test can speak for several clients through X-Forwarded-For.
BEHIND_A_PROXY = {"TRUSTED_PROXY_HOPS": "1", "OTS_PUBLIC_URL": "https://share.example.org"}
CLIENT_A = "203.0.113.10"
CLIENT_B = "203.0.113.20"


def slots_key(address: str) -> str:
    return SLOTS_PREFIX + ClientKeys(TEST_SECRET_KEY, 64).key_of(address)


def upload_head(content_length: int, client: str | None = None) -> bytes:
    """An upload's request head, from ``client`` as the one trusted proxy reports it."""
    forwarded = f"X-Forwarded-For: {client}\r\n" if client else ""
    return (
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
        f"{forwarded}User-Agent: {BROWSER['User-Agent']}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


def file_part_head() -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def start_upload(server: LiveServer, client: str, declared: int = 4 * 1024 * 1024) -> socket.socket:
    """An upload that declares ``declared`` bytes, sends the first few and then holds still."""
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    connection.sendall(upload_head(declared, client) + file_part_head() + b"first bytes")
    return connection


def uploads_marked(redis_client: redis.Redis) -> int:
    """Uploads under way: each has its liveness mark from its first file byte."""
    return sum(key.startswith(b"ots:upload:") for key in share_keys(redis_client))


def upload_small(server: LiveServer, client: str) -> httpx.Response:
    body, headers = multipart({}, ("small.txt", b"small"))
    return httpx.post(
        f"{server.base_url}/upload",
        content=body,
        headers={**headers, **JSON, **BROWSER, "X-Forwarded-For": client},
        timeout=20,
    )


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    connections: list[socket.socket] = []
    yield connections
    for connection in connections:
        connection.close()


def test_a_client_beyond_its_upload_requests_in_flight_gets_429_at_once(
    live_server_factory: LiveServerFactory,
    redis_client: redis.Redis,
    held: list[socket.socket],
) -> None:
    server = live_server_factory(
        rate_limits_enabled=True,
        idle_timeout=120,
        env={**BEHIND_A_PROXY, "OTS_UPLOADS_PER_CLIENT": "4", "OTS_UPLOAD_RATE_GRACE": "120"},
    )
    held += [start_upload(server, CLIENT_A) for _ in range(4)]
    wait_until(lambda: redis_client.zcard(slots_key(CLIENT_A)) == 4)
    wait_until(lambda: uploads_marked(redis_client) == 4)
    # Stalled before a whole batch: they hold no file yet (created by the first batch).
    assert list(server.settings.blob_dir.glob("*.part")) == []

    # The fifth sends its head and nothing more: the answer comes without any body.
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as fifth:
        fifth.sendall(upload_head(4 * 1024 * 1024, CLIENT_A))
        status, headers, answer = read_one_response(fifth)
    assert status == 429
    assert headers["retry-after"] == "5"
    refusal = json.loads(answer)
    assert refusal["code"] == "uploads_in_flight"
    assert "4 uploads" in refusal["error"] and "in progress" in refusal["error"]
    assert refusal["retry_after"] == 5
    assert uploads_marked(redis_client) == 4  # it started nothing

    # Somebody else is not affected.
    assert upload_small(server, CLIENT_B).status_code == 201

    # The slots are keyed by a hash: Redis does not hold the address.
    assert not [key for key in redis_client.scan_iter() if CLIENT_A.encode() in key]

    # A request that ends (here the client goes away) gives its slot back.
    held.pop().close()
    wait_until(lambda: redis_client.zcard(slots_key(CLIENT_A)) == 3)
    assert upload_small(server, CLIENT_A).status_code == 201
    while held:
        held.pop().close()
    wait_until(lambda: redis_client.exists(slots_key(CLIENT_A)) == 0)
    wait_until(lambda: uploads_marked(redis_client) == 0)
    assert list(server.settings.blob_dir.glob("*.part")) == []


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (workers, whatever supervises them), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The name in parentheses may hold spaces; the parent pid follows the state.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, of in parents.items() if of == parent]
        found += children
        frontier += children
    return found


def kill_everything(server: LiveServer) -> None:
    """SIGKILL the server and all its processes: no request gets to release anything."""
    assert server.process is not None
    below = descendants(server.process.pid)
    server.kill()
    for pid in below:
        with contextlib.suppress(ProcessLookupError):  # gone with its parent
            os.kill(pid, signal.SIGKILL)


def test_a_killed_workers_slots_are_freed_after_their_lease(
    live_server_factory: LiveServerFactory,
    redis_client: redis.Redis,
    held: list[socket.socket],
) -> None:
    environment = {
        **BEHIND_A_PROXY,
        "OTS_UPLOADS_PER_CLIENT": "1",
        "OTS_UPLOAD_SLOT_SECONDS": "2",
        "OTS_UPLOAD_RATE_GRACE": "120",
    }
    server = live_server_factory(rate_limits_enabled=True, idle_timeout=120, env=environment)
    held.append(start_upload(server, CLIENT_A))
    wait_until(lambda: redis_client.zcard(slots_key(CLIENT_A)) == 1)
    assert upload_small(server, CLIENT_A).status_code == 429

    kill_everything(server)
    # Nobody released the lease; it lapses on its own once no heartbeat renews it.
    wait_until(lambda: redis_client.exists(slots_key(CLIENT_A)) == 0, timeout=20)
    again = live_server_factory(rate_limits_enabled=True, idle_timeout=120, env=environment)
    assert upload_small(again, CLIENT_A).status_code == 201


def test_an_upload_slower_than_the_minimum_rate_is_cut_with_408_and_leaves_nothing(
    live_server_factory: LiveServerFactory, redis_client: redis.Redis
) -> None:
    server = live_server_factory(
        idle_timeout=30, env={"OTS_MIN_UPLOAD_RATE": "1000", "OTS_UPLOAD_RATE_GRACE": "1"}
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as connection:
        connection.sendall(upload_head(1024 * 1024) + file_part_head() + b"x" * 10)
        wait_until(lambda: uploads_marked(redis_client) == 1)
        # A byte every quarter second: never idle, far below 1000 bytes/s.
        for _ in range(240):
            connection.sendall(b"x")
            readable, _, _ = select.select([connection], [], [], 0.25)
            if readable:
                break
        else:
            raise AssertionError("the trickling upload was never cut off")
        status, _, answer = read_one_response(connection)
    assert status == 408
    error = json.loads(answer)
    assert error["code"] == "too_slow"
    assert "too slowly" in error["error"] and "1000 bytes/s" in error["error"]
    assert list(server.settings.blob_dir.iterdir()) == []
    assert share_keys(redis_client) == []
