"""End to end through ``onetimeshare serve``: real sockets, real workers, real Redis processes."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import httpx
import redis

from onetimeshare.config import MIB, Settings
from onetimeshare.process.embedded_redis import EmbeddedRedis
from tests.helpers import (
    BOUNDARY,
    BROWSER,
    JSON,
    LiveServer,
    LiveServerFactory,
    files_in,
    multipart,
    read_one_response,
    serve_until_exit,
    share_keys,
    upload_live,
    wait_until,
)


def test_round_trip_and_one_time_semantics_across_two_workers(live_server: LiveServer) -> None:
    data = os.urandom(2 * MIB + 3)
    share = upload_live(live_server.base_url, data, password="pw")
    url = str(share["url"])

    for _ in range(4):  # spread over both workers; looking never consumes
        assert httpx.get(url, headers=BROWSER).status_code == 200

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, headers=BROWSER) as client:
            return await asyncio.gather(
                *(client.post(url, data={"password": "pw"}) for _ in range(16))
            )

    responses = asyncio.run(race())
    assert sorted(response.status_code for response in responses) == [200] + [410] * 15
    winner = next(response for response in responses if response.status_code == 200)
    assert winner.content == data
    assert winner.headers["content-length"] == str(len(data))
    wait_until(lambda: files_in(live_server.settings.blob_dir) == [])


def test_client_gone_mid_upload_leaves_nothing(
    live_server: LiveServer, redis_client: redis.Redis
) -> None:
    body, headers = multipart(file=("big.bin", os.urandom(6 * MIB)))
    request_head = (
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
        f"Content-Type: {headers['Content-Type']}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    blob_dir = live_server.settings.blob_dir
    with socket.create_connection(("127.0.0.1", live_server.port)) as connection:
        connection.sendall(request_head + body[: 3 * MIB])
        wait_until(lambda: any(name.endswith(".part") for name in files_in(blob_dir)))
        assert any(key.startswith(b"ots:upload:") for key in share_keys(redis_client))
    wait_until(lambda: files_in(blob_dir) == [] and share_keys(redis_client) == [])


def test_client_gone_mid_download_still_burns_the_share(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(workers=1, max_upload_bytes=96 * MIB)
    share = upload_live(server.base_url, os.urandom(96 * MIB))
    url = str(share["url"])
    with httpx.stream("POST", url, headers=BROWSER, timeout=30) as response:
        assert response.status_code == 200
        first = next(response.iter_raw(64 * 1024))
        assert first
    # Closed after one piece of 96 MiB: the share is consumed and its blob deleted.
    wait_until(lambda: files_in(server.settings.blob_dir) == [])
    again = httpx.get(url, headers={**BROWSER, **JSON})
    assert again.status_code == 410
    assert again.json()["reason"] == "downloaded"
    assert "Traceback" not in server.log_path.read_text()


def test_chunked_body_over_the_limit_gets_413_and_leaves_nothing(
    live_server: LiveServer, settings: Settings, redis_client: redis.Redis
) -> None:
    body, headers = multipart(file=("big.bin", os.urandom(settings.max_upload_bytes + MIB)))

    def pieces() -> object:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    try:
        response = httpx.post(
            f"{live_server.base_url}/upload",
            content=pieces(),  # type: ignore[arg-type]
            headers={**headers, **JSON},
            timeout=30,
        )
        assert response.status_code == 413
        assert "at most" in response.json()["error"]
    except (httpx.WriteError, httpx.RemoteProtocolError):
        pass  # the server may close the socket on the rest of the body after answering
    wait_until(lambda: files_in(live_server.settings.blob_dir) == [])
    assert share_keys(redis_client) == []


def test_declared_length_over_the_limit_is_refused_before_reading(
    live_server: LiveServer, settings: Settings
) -> None:
    head = (
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {settings.max_upload_bytes * 4}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as connection:
        connection.sendall(head)  # and no body at all: the answer must not wait for one
        status, _, body = read_one_response(connection)
    assert status == 413
    assert b'"code":"too_large"' in body


def test_embedded_redis_keeps_shares_across_restarts(
    live_server_factory: LiveServerFactory, settings: Settings
) -> None:
    server = live_server_factory(workers=2, redis_url=None)
    embedded = EmbeddedRedis(settings.embedded_redis_dir)
    assert embedded.answers()
    share = upload_live(server.base_url, b"kept across restarts", expires_in="3600")

    server.stop()
    assert not embedded.answers(), "the embedded Redis stops with the service"
    assert (settings.embedded_redis_dir / "appendonly.aof").exists()

    server.start()
    ttl = redis.Redis(unix_socket_path=str(embedded.socket_path)).ttl(f"ots:share:{share['id']}")
    assert 3500 < ttl <= 3600
    response = httpx.post(str(share["url"]), headers=BROWSER)
    assert response.content == b"kept across restarts"


def test_bad_configuration_exits_with_a_clear_message(tmp_path: Path) -> None:
    env = {**os.environ, "OTS_DATA_DIR": str(tmp_path), "OTS_MAX_PASSWORD_TRIES": "lots"}
    result = serve_until_exit(env)
    assert result.returncode == 2
    assert "OTS_MAX_PASSWORD_TRIES: expected a whole number, got 'lots'" in result.stderr
    assert "Traceback" not in result.stderr
