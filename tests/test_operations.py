"""Running it: metrics, structured logs without secrets, graceful shutdown."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket

import httpx
import redis
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.web.app import create_app
from tests.conftest import LiveServerFactory
from tests.helpers import (
    JSON,
    multipart,
    read_one_response,
    share_keys,
    token_path,
    upload,
    wait_until,
)

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) tests"}
METRICS_TOKEN = "metrics-token-for-tests-0123456789"


async def test_metrics_are_off_unless_a_token_is_set(client: QuartClient) -> None:
    assert (await client.get("/metrics")).status_code == 404


async def test_metrics_need_the_token_and_never_show_secrets(settings: Settings) -> None:
    application = create_app(dataclasses.replace(settings, metrics_token=METRICS_TOKEN))
    authorised = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with application.test_app():
        client = application.test_client()
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        # Counters are per process and this process runs other tests: compare deltas.
        before = await (await client.get("/metrics", headers=authorised)).get_data(as_text=True)
        share = await upload(client, b"counted", filename="metric-secret-name.txt")
        await client.get(token_path(share))
        await client.post(token_path(share))
        answer = await client.get("/metrics", headers=authorised)
    assert answer.status_code == 200
    text = await answer.get_data(as_text=True)

    def grew(name: str, labels: str) -> float:
        return metric_value(text, name, labels) - metric_value(before, name, labels, default=0)

    assert grew("ots_requests_total", 'method="GET",route="/d/<token>",status="200"') == 1
    assert grew("ots_requests_total", 'method="POST",route="/upload",status="201"') == 1
    assert grew("ots_transfer_bytes_total", 'direction="in"') == 7
    assert 'ots_service_events_total{event="uploads"} 1' in text  # this test's own Redis
    assert "ots_service_active_shares 0" in text
    token = share["url"].rsplit("/", 1)[1]
    assert token not in text and "metric-secret-name" not in text


def metric_value(text: str, name: str, labels: str, default: float | None = None) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    if match is None and default is not None:
        return default
    assert match, f"{name}{{{labels}}} not in the scrape"
    return float(match.group(1))


def test_metrics_add_up_across_workers(live_server_factory: LiveServerFactory) -> None:
    server = live_server_factory(workers=2, metrics_token=METRICS_TOKEN)
    with httpx.Client(base_url=server.base_url, headers=BROWSER) as client:
        for _ in range(12):  # new connections, spread over both workers
            assert httpx.get(f"{server.base_url}/", headers=BROWSER).status_code == 200
        scrape = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scrape.status_code == 200
    assert (
        metric_value(scrape.text, "ots_requests_total", 'method="GET",route="/",status="200"') == 12
    )


def test_logs_are_json_lines_without_any_secret(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(workers=2, env={"OTS_LOG_FORMAT": "json"}, block_cli_agents=True)
    name, password, text = "TOPSECRET-plan.pdf", "log-password-42", "LOGGED-SECRET-TEXT"
    body, headers = multipart({"password": password}, (name, os.urandom(5000)))
    share = httpx.post(
        f"{server.base_url}/upload", content=body, headers={**headers, **JSON}
    ).json()
    body, headers = multipart({"text": text, "password": password})
    message = httpx.post(
        f"{server.base_url}/upload", content=body, headers={**headers, **JSON}
    ).json()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    link, note = str(share["url"]), str(message["url"])
    httpx.get(link, headers=BROWSER)
    httpx.post(link, content=b"password=wrong", headers={**BROWSER, **form})
    httpx.post(link, content=f"password={password}".encode(), headers={**BROWSER, **form})
    httpx.post(note, content=f"password={password}".encode(), headers={**BROWSER, **form})
    httpx.get(link, headers={"User-Agent": "curl/8"})
    httpx.post(str(message["revoke_url"]), headers=BROWSER)
    server.stop()

    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    paths = {record.get("path") for record in records if record["logger"].endswith("requests")}
    assert {"/upload", "/d/…"} <= paths
    events = [record["event"] for record in records if record.get("event")]
    assert {"created", "wrong_password", "downloaded", "blocked"} <= set(events)
    log_text = server.log_path.read_text()
    secrets = [
        name,
        "TOPSECRET",
        password,
        text,
        link.rsplit("/", 1)[1],
        note.rsplit("/", 1)[1],
        str(message["revoke_url"]).rsplit("/", 1)[1],
    ]
    for secret in secrets:
        assert secret not in log_text, secret


def upload_in_progress(redis_client: redis.Redis) -> bool:
    """An upload has started streaming (its mark is set; its .part exists once a batch is in)."""
    return any(key.startswith(b"ots:upload:") for key in share_keys(redis_client))


def slow_upload(port: int, size: int) -> tuple[socket.socket, bytes]:
    """Start an upload, send half of it, and return the socket and the rest to send."""
    body, headers = multipart(file=("slow.bin", os.urandom(size)))
    head = (
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
        f"Content-Type: {headers['Content-Type']}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(head + body[: len(body) // 2])
    return connection, body[len(body) // 2 :]


def test_sigterm_lets_an_upload_in_flight_finish(
    live_server_factory: LiveServerFactory, redis_client: redis.Redis
) -> None:
    server = live_server_factory(workers=1, graceful_timeout=20)
    connection, rest = slow_upload(server.port, 2 * 1024 * 1024)
    wait_until(lambda: upload_in_progress(redis_client))
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
    wait_until(lambda: upload_in_progress(redis_client))
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)  # the client never sends the rest
    connection.close()
    assert list(server.settings.blob_dir.iterdir()) == []
    assert share_keys(redis_client) == []
