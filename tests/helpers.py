"""Small tools shared by the tests: multipart bodies, uploads, and waiting on a condition."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import redis
from quart import Quart
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.web.app import create_app

BOUNDARY = "----onetimeshare-test-boundary"
JSON = {"Accept": "application/json"}
# Download links refuse command-line clients; the live-server tests speak as a browser.
BROWSER_AGENT = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) OneTimeShare-tests"}


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[Quart]:
    """An app past start-up: tests begin once the start-up janitor pass is over."""
    application = create_app(settings)
    async with application.test_app():
        await application.extensions["onetimeshare"].janitor.started.wait()
        yield application


def multipart(
    fields: dict[str, str] | None = None,
    file: tuple[str, bytes] | None = None,
    *,
    file_field: str = "file",
    close: bool = True,
    content_type: str = "application/octet-stream",
    file_first: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body; the file part comes last (as in our form) unless asked."""
    parts: list[bytes] = []
    for name, value in (fields or {}).items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    if file is not None:
        filename, data = file
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{file_field}"; '
            f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
        )
        parts.insert(0 if file_first else len(parts), head.encode() + data + b"\r\n")
    body = b"".join(parts) + (f"--{BOUNDARY}--\r\n".encode() if close else b"")
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


async def upload(
    client: QuartClient,
    data: bytes,
    *,
    filename: str = "report.pdf",
    password: str | None = None,
    expires_in: int | None = None,
    expect: int = 201,
    content_type: str = "application/octet-stream",
) -> dict[str, Any]:
    """Upload through the JSON API and return its answer."""
    fields = {}
    if password is not None:
        fields["password"] = password
    if expires_in is not None:
        fields["expires_in"] = str(expires_in)
    body, headers = multipart(fields, (filename, data), content_type=content_type)
    response = await client.post("/upload", data=body, headers={**headers, **JSON})
    assert response.status_code == expect, await response.get_data(as_text=True)
    return await response.get_json()  # type: ignore[no-any-return]


def upload_live(
    base_url: str, data: bytes, filename: str = "file.bin", **fields: str
) -> dict[str, Any]:
    """Upload to a live server through the JSON API and return its answer."""
    body, headers = multipart(fields, (filename, data))
    response = httpx.post(
        f"{base_url}/upload", content=body, headers={**headers, **JSON}, timeout=30
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def download_live(url: str) -> httpx.Response:
    """The one-time download of a share link, as a browser posts it."""
    return httpx.post(url, headers=BROWSER_AGENT, timeout=30)


def run_command(
    *arguments: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``onetimeshare <arguments>`` that is expected to end by itself; its exit and output."""
    return subprocess.run(
        [sys.executable, "-m", "onetimeshare", *arguments],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def serve_until_exit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``onetimeshare serve`` that is expected to refuse to start."""
    return run_command("serve", env=env)


BOOKKEEPING_PREFIXES = (
    b"ots:janitor:",
    b"ots:stats",
    b"ots:events",
    b"ots:rl:",
    b"ots:looplag",  # each worker's figures and the index of workers
    b"ots:admin:",
)
ACTIVE_INDEX = (b"ots:active:expiry", b"ots:active:size", b"ots:active:info")


def share_keys(client: redis.Redis) -> list[bytes]:
    """Every key a share or upload left in Redis.

    Service bookkeeping (janitor, statistics, the event feed, rate limits) is left
    out; the index of live shares is included only while it lists something.
    """
    return sorted(key for key in client.scan_iter() if not key.startswith(BOOKKEEPING_PREFIXES))


def token_path(share: dict[str, Any]) -> str:
    """The path part of a share link: /d/<token>."""
    return "/d/" + share["url"].rsplit("/d/", 1)[1]


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def wait_until(
    condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Poll a condition until it holds; fail after ``timeout``.

    This waits for a state to be reached (a process healthy, a TTL run out),
    never for a guessed amount of time.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


async def wait_until_async(
    condition: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def read_one_response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Exactly one HTTP/1.1 response (head plus Content-Length body) from a raw socket."""
    received = b""
    while b"\r\n\r\n" not in received:
        piece = connection.recv(65536)
        assert piece, f"connection closed before a whole response head: {received!r}"
        received += piece
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = connection.recv(65536)
        assert piece, "connection closed inside the response body"
        body += piece
    return int(status_line.split()[1]), headers, body[:length]
