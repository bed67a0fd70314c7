"""A worker that dies (SIGKILL: the OOM killer, a crash in a C extension) is replaced,
and the service keeps its promises: the master and the embedded Redis live on, uploads
and downloads keep succeeding, live shares stay, and what the dead worker left behind
(a partial upload, a claimed share's blob) is swept. On SIGTERM the master stops its
workers gracefully: an upload in flight may finish within OTS_GRACEFUL_TIMEOUT, and one
that does not is cleaned up.

Workers are found as the master's children (the embedded Redis is one too); the one
holding an upload or a download is the one with that file open.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from onetimeshare.config import MIB
from onetimeshare.process.embedded_redis import EmbeddedRedis
from onetimeshare.process.janitor import LOCK_SECONDS
from tests.helpers import (
    BROWSER,
    METRICS_TOKEN,
    LiveServer,
    LiveServerFactory,
    download_live,
    multipart,
    read_one_response,
    share_keys,
    upload_head,
    upload_live,
    uploads_marked,
    wait_until,
)

# Generous: a new worker is a fresh interpreter importing the app on 2 busy cores.
RECOVERY_TIMEOUT = 15.0


# --- the processes of one server ----------------------------------------------------------


def master_pid(server: LiveServer) -> int:
    assert server.process is not None
    return server.process.pid


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""  # gone meanwhile


def children(server: LiveServer) -> list[int]:
    pid = master_pid(server)
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def worker_pids(server: LiveServer) -> set[int]:
    """Live workers (a dead one not yet reaped is a zombie with no command line)."""
    return {pid for pid in children(server) if "spawn_main" in command_line(pid)}


def redis_pid(server: LiveServer) -> int:
    [pid] = [pid for pid in children(server) if "redis-server" in command_line(pid)]
    return pid


def all_workers_up(server: LiveServer) -> set[int]:
    wait_until(lambda: len(worker_pids(server)) == server.workers, timeout=RECOVERY_TIMEOUT)
    return worker_pids(server)


def holder_of(path: Path, pids: set[int]) -> int | None:
    """The process among ``pids`` that has ``path`` open."""
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for descriptor in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if os.readlink(descriptor) == str(path):
                        return pid
    return None


def log_records(server: LiveServer) -> list[dict[str, Any]]:
    lines = server.log_path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


# --- requests -----------------------------------------------------------------------------


def round_trip_works(server: LiveServer) -> bool:
    """A new share uploaded and downloaded once, intact."""
    data = os.urandom(300_000)
    try:
        share = upload_live(server.base_url, data)
        response = download_live(str(share["url"]))
    except httpx.TransportError:
        return False
    return response.status_code == 200 and response.content == data


def read_until_closed(connection: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while piece := connection.recv(65536):
            received += piece
    return received


# --- what must hold after a worker died ---------------------------------------------------


def start(live_server_factory: LiveServerFactory, workers: int, **overrides: object) -> LiveServer:
    """A server on the embedded Redis, with a janitor pass every second and upload marks
    that lapse 2 s after their upload stopped."""
    server = live_server_factory(
        workers=workers, redis_url=None, janitor_interval=1, upload_mark_seconds=2, **overrides
    )
    all_workers_up(server)
    return server


def kill_worker(server: LiveServer, pid: int) -> None:
    assert pid in worker_pids(server)
    os.kill(pid, signal.SIGKILL)


def assert_recovered(server: LiveServer, killed: int, redis_before: int) -> None:
    """The worker was replaced, and everything else carried on."""

    def replaced() -> bool:
        assert server.process is not None and server.process.poll() is None, (
            "the master exited: " + server.log_path.read_text()[-2000:]
        )
        workers = worker_pids(server)
        return killed not in workers and len(workers) == server.workers

    wait_until(replaced, timeout=RECOVERY_TIMEOUT)
    assert redis_pid(server) == redis_before, "the embedded Redis was restarted"
    assert EmbeddedRedis(server.settings.embedded_redis_dir).answers()

    wait_until(lambda: round_trip_works(server), timeout=RECOVERY_TIMEOUT, interval=0.1)

    records = log_records(server)
    [death] = [record for record in records if record.get("worker_pid") == killed]
    assert death["level"] == "error" and death["signal"] == "SIGKILL"
    assert death["exit_code"] is None
    assert [record for record in records if record.get("replaces_pid") == killed]


def assert_still_live(kept: dict[str, Any], kept_data: bytes) -> None:
    """A share uploaded before the worker died downloads intact (which uses it up)."""
    response = download_live(str(kept["url"]))
    assert response.status_code == 200
    assert response.content == kept_data


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_idle_worker_killed_is_replaced_and_its_counts_are_kept(
    live_server_factory: LiveServerFactory, workers: int
) -> None:
    server = start(live_server_factory, workers, metrics_token=METRICS_TOKEN)
    kept_data = os.urandom(500_000)
    kept = upload_live(server.base_url, kept_data)
    for _ in range(6):  # new connections, spread over the workers
        assert httpx.get(f"{server.base_url}/", headers=BROWSER).status_code == 200
    redis_before = redis_pid(server)
    killed = min(worker_pids(server))

    kill_worker(server, killed)
    assert_recovered(server, killed, redis_before)
    assert_still_live(kept, kept_data)

    scrape = httpx.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert scrape.status_code == 200
    # The dead worker's requests still count: only its live gauges go with it.
    labels = 'method="GET",route="/",status="200"'
    match = re.search(rf"^ots_requests_total\{{{re.escape(labels)}\}} (\S+)$", scrape.text, re.M)
    assert match is not None and float(match.group(1)) == 6


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_killed_mid_upload_is_replaced_and_its_part_swept(
    live_server_factory: LiveServerFactory, workers: int
) -> None:
    server = start(live_server_factory, workers)
    blob_dir = server.settings.blob_dir
    kept_data = os.urandom(500_000)
    kept = upload_live(server.base_url, kept_data)
    redis_before = redis_pid(server)

    body, headers = multipart(file=("big.bin", os.urandom(6 * MIB)))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(upload_head(len(body), headers["Content-Type"]) + body[: 3 * MIB])
        wait_until(lambda: any(blob_dir.glob("*.part")))
        [part] = blob_dir.glob("*.part")
        wait_until(lambda: holder_of(part, worker_pids(server)) is not None)
        uploader = holder_of(part, worker_pids(server))
        assert uploader is not None
        kill_worker(server, uploader)
        read_until_closed(connection)  # the client sees its connection cut, no answer
    assert part.exists(), "a SIGKILLed worker cannot clean up; the janitor must"

    assert_recovered(server, uploader, redis_before)

    def part_swept() -> bool:
        assert (blob_dir / f"{kept['id']}.blob").exists(), "a live share's blob was removed"
        return not part.exists()

    # A janitor lock the dead worker held lapses too (LOCK_SECONDS).
    wait_until(part_swept, timeout=RECOVERY_TIMEOUT + LOCK_SECONDS)
    assert_still_live(kept, kept_data)


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_killed_mid_download_is_replaced_and_the_share_stays_used_up(
    live_server_factory: LiveServerFactory, workers: int
) -> None:
    server = start(live_server_factory, workers, max_upload_bytes=32 * MIB)
    blob_dir = server.settings.blob_dir
    kept_data = os.urandom(500_000)
    kept = upload_live(server.base_url, kept_data)
    redis_before = redis_pid(server)
    # Bigger than what the socket buffers hold, read by a client that takes little.
    big = upload_live(server.base_url, os.urandom(24 * MIB))
    blob = blob_dir / f"{big['id']}.blob"
    path = "/d/" + str(big["url"]).rsplit("/d/", 1)[1]

    with socket.socket() as connection:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        connection.settimeout(30)
        connection.connect(("127.0.0.1", server.port))
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {BROWSER['User-Agent']}\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        head = connection.recv(65536)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        wait_until(lambda: holder_of(blob, worker_pids(server)) is not None)
        downloader = holder_of(blob, worker_pids(server))
        assert downloader is not None
        kill_worker(server, downloader)
        received = head + read_until_closed(connection)
    declared = re.search(rb"content-length: (\d+)", received, re.I)
    assert declared is not None
    assert len(received.partition(b"\r\n\r\n")[2]) < int(declared.group(1)), "not cut short"

    assert_recovered(server, downloader, redis_before)
    assert download_live(str(big["url"])).status_code == 410  # claimed before it was sent

    def blob_swept() -> bool:
        assert (blob_dir / f"{kept['id']}.blob").exists(), "a live share's blob was removed"
        return not blob.exists()

    wait_until(blob_swept, timeout=RECOVERY_TIMEOUT + LOCK_SECONDS)
    assert_still_live(kept, kept_data)


def test_a_worker_that_cannot_be_started_is_retried_until_it_can(
    live_server_factory: LiveServerFactory,
) -> None:
    """The replacement itself fails (here its interpreter is gone for a while, as during a
    package upgrade): the master keeps trying, backing off, and serves again once it can."""
    interpreter = Path(sys.executable)
    link = interpreter.with_name(f"python-supervision-test-{os.getpid()}")
    away = link.with_name(link.name + ".away")
    link.symlink_to(interpreter.name)
    try:
        server = start(live_server_factory, 1, executable=str(link))
        redis_before = redis_pid(server)
        killed = min(worker_pids(server))
        link.rename(away)
        kill_worker(server, killed)

        def replacements_failed() -> bool:
            # Each replacement fails to start its interpreter and exits at once.
            failures = [
                record
                for record in log_records(server)
                if record.get("worker_pid") not in (None, killed) and record.get("exit_code")
            ]
            return len(failures) >= 2

        wait_until(replacements_failed, timeout=RECOVERY_TIMEOUT)
        assert server.process is not None and server.process.poll() is None
        assert EmbeddedRedis(server.settings.embedded_redis_dir).answers()
        away.rename(link)

        def serving_again() -> bool:
            assert server.process is not None and server.process.poll() is None
            return len(worker_pids(server)) == 1 and round_trip_works(server)

        wait_until(serving_again, timeout=RECOVERY_TIMEOUT, interval=0.2)
        assert redis_pid(server) == redis_before
    finally:
        for path in (link, away):
            path.unlink(missing_ok=True)


# --- SIGTERM: a graceful stop ------------------------------------------------------------


def slow_upload(port: int, size: int) -> tuple[socket.socket, bytes]:
    """Start an upload, send half of it, and return the socket and the rest to send."""
    body, headers = multipart(file=("slow.bin", os.urandom(size)))
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(upload_head(len(body), headers["Content-Type"]) + body[: len(body) // 2])
    return connection, body[len(body) // 2 :]


def test_sigterm_lets_an_upload_in_flight_finish(
    live_server_factory: LiveServerFactory, redis_client: redis.Redis
) -> None:
    server = live_server_factory(workers=1, graceful_timeout=20)
    connection, rest = slow_upload(server.port, 2 * 1024 * 1024)
    wait_until(lambda: uploads_marked(redis_client) > 0)  # it has started streaming
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    connection.sendall(rest)
    status, _, _ = read_one_response(connection)
    connection.close()
    assert status == 201
    server.process.wait(timeout=30)
    assert [key for key in share_keys(redis_client) if key.startswith(b"ots:share:")]


def test_sigterm_cleans_up_an_upload_that_does_not_finish_in_time(
    live_server_factory: LiveServerFactory, redis_client: redis.Redis
) -> None:
    server = live_server_factory(workers=1, graceful_timeout=1)
    connection, _ = slow_upload(server.port, 2 * 1024 * 1024)
    wait_until(lambda: uploads_marked(redis_client) > 0)  # it has started streaming
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)  # the client never sends the rest
    connection.close()
    assert list(server.settings.blob_dir.iterdir()) == []
    assert share_keys(redis_client) == []
