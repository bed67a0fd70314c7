"""What the tests share: paths, request headers, constants, and plain functions (multipart
bodies, uploads, pages, the admin sign-in, raw sockets, Redis, a live server, waiting on a
condition). Fixtures live in conftest.py; this module holds no fixture."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import redis
from argon2 import PasswordHasher
from quart import Quart, Response
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings, variables
from onetimeshare.domain.crypto import Argon2Params
from onetimeshare.process.processes import stop_process
from onetimeshare.web.app import create_app

# --- paths: from here, wherever a test module sits ------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_ROOT / "app"  # the package onetimeshare
TEMPLATES_DIR = REPO_ROOT / "templates"
VENDOR_DIR = REPO_ROOT / "static" / "vendor"

# --- settings the tests run with ------------------------------------------------------

# Cheap Argon2id for tests; one test checks the production defaults separately.
TEST_ARGON2 = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)
TEST_SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
# A key the settings accept, for tests that build an environment of their own.
STRONG_KEY = "k3y-" + "x" * 60
SHORT_EXPIRY = 1
SETTING_NAMES = frozenset(variable.name for variable in variables())
METRICS_TOKEN = "metrics-token-for-tests-0123456789"

# --- request headers ------------------------------------------------------------------

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
HTMX = {"HX-Request": "true"}
# Download links refuse command-line clients; tests that block them speak as a browser.
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) OneTimeShare-tests"}

# --- what pages and tokens look like ----------------------------------------------------

BOUNDARY = "----onetimeshare-test-boundary"
BASE64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
UPLOAD_ID = "AbCdEfGhIjKlMnOpQr_-12"  # well formed: 22 url-safe characters
# The single-use proof in the page a right password answers.
UNLOCK_INPUT = re.compile(r'<input type="hidden" name="unlock" value="([A-Za-z0-9_-]{43})">')
# A countdown or a progress fragment that asks again after a while.
LOAD_DELAY = re.compile(r'hx-trigger="load delay:(\d+)(m?s)\b')

TAG = re.compile(r"<[A-Za-z][^>]*>")
INLINE_STYLE = re.compile(r"\sstyle\s*=", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
HTMX_HANDLER = re.compile(r"\shx-on", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\ssrc\s*=)[^>]*>", re.IGNORECASE)

# --- the admin area -----------------------------------------------------------------------

ADMIN_USER = "admin"
ADMIN_PASSWORD = "dev-only-admin-password-31"
# A cheap Argon2id hash keeps the many sign-ins fast; tests/web/test_auth.py also signs in
# with ADMIN_PASSWORD itself, which the app hashes with the production parameters.
ADMIN_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(ADMIN_PASSWORD)
ADMIN_PANELS = (
    "/admin/counters",
    "/admin/shares",
    "/admin/activity",
    "/admin/system",
    "/admin/chart",
)
CSRF_INPUT = re.compile(r'<input type="hidden" name="csrf" value="([0-9a-f]{64})">')


# --- an app in this process -------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[Quart]:
    """An app past start-up: tests begin once the start-up janitor pass is over."""
    application = create_app(settings)
    async with application.test_app():
        await application.extensions["onetimeshare"].janitor.started.wait()
        yield application


@contextlib.asynccontextmanager
async def client_with(settings: Settings, **overrides: Any) -> AsyncIterator[QuartClient]:
    """A client of an app with changed settings (do not combine with the ``client`` fixture)."""
    async with running_app(dataclasses.replace(settings, **overrides)) as application:
        yield application.test_client()


# --- request bodies and uploads ---------------------------------------------------------


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


def urlencoded(**fields: str) -> str:
    """An application/x-www-form-urlencoded body."""
    return "&".join(f"{name}={quote(value)}" for name, value in fields.items())


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


async def upload_text(
    client: QuartClient,
    text: str,
    *,
    password: str | None = None,
    expires_in: int | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    """Share a text message through the JSON API and return its answer."""
    fields = {"text": text}
    if password is not None:
        fields["password"] = password
    if expires_in is not None:
        fields["expires_in"] = str(expires_in)
    body, headers = multipart(fields)
    response = await client.post("/upload", data=body, headers={**headers, **JSON})
    assert response.status_code == expect, await response.get_data(as_text=True)
    return await response.get_json()  # type: ignore[no-any-return]


async def post_form(
    client: QuartClient,
    path: str,
    password: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """A form post, as a browser sends it: the download (or unlock) of a share link."""
    body = f"password={quote(password)}" if password is not None else ""
    return await client.post(path, data=body, headers={**FORM, **(headers or {})})


def token_path(share: dict[str, Any]) -> str:
    """The path part of a share link: /d/<token>."""
    return "/d/" + share["url"].rsplit("/d/", 1)[1]


def revoke_path(share: dict[str, Any]) -> str:
    """The path part of a revoke link: /r/<revoke token>."""
    return "/r/" + share["revoke_url"].rsplit("/r/", 1)[1]


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


async def page_path(client: QuartClient, name: str) -> str:
    """The address of a page by name: home, home_text, progress, or (of a share it uploads)
    landing, status or revoke."""
    if name == "home":
        return "/"
    if name == "home_text":
        return "/?mode=text"
    if name == "progress":
        return f"/upload/progress/{UPLOAD_ID}"
    share = await upload(client, b"page or fragment", filename="notes.txt")
    return {
        "landing": token_path(share),
        "status": token_path(share) + "/status",
        "revoke": revoke_path(share),
    }[name]


# --- what the answers say ----------------------------------------------------------------


async def markup(response: Any) -> str:
    """The body of an HTML answer, checked for anything the strict CSP would block."""
    assert response.content_type.startswith("text/html"), response.content_type
    text: str = await response.get_data(as_text=True)
    for tag in TAG.findall(text):
        assert not INLINE_STYLE.search(tag), f"inline style attribute in {tag!r}"
        assert not EVENT_HANDLER.search(tag), f"inline event handler in {tag!r}"
        assert not HTMX_HANDLER.search(tag), f"hx-on handler in {tag!r}"
    assert not INLINE_SCRIPT.search(text), "inline <script> without src"
    return text


def assert_full_page(text: str) -> None:
    assert "<!doctype html>" in text
    assert 'name="htmx-config"' in text
    assert "<head" in text


def assert_fragment(text: str) -> None:
    assert "<html" not in text
    assert "<head" not in text
    assert "<!doctype" not in text.lower()
    assert "htmx-config" not in text
    assert text.strip(), "an empty fragment"


def secret_text(page: str) -> str:
    """The revealed message in a page."""
    match = re.search(r'<pre class="secret"[^>]*>(.*?)</pre>', page, re.DOTALL)
    assert match is not None, 'no <pre class="secret"> in the page'
    return match.group(1)


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text


def json_error(body: str | bytes, code: str) -> dict[str, str]:
    """A JSON error body must be exactly {"error": str, "code": str}."""
    text = body.decode() if isinstance(body, bytes) else body
    assert_no_traceback(text)
    error = json.loads(text)
    assert set(error) == {"error", "code"}, error
    assert isinstance(error["error"], str) and error["error"]
    assert error["code"] == code
    return error  # type: ignore[no-any-return]


# --- what is left on disk and in Redis ----------------------------------------------------

BOOKKEEPING_PREFIXES = (
    b"ots:janitor:",
    b"ots:stats",
    b"ots:events",
    b"ots:rl:",
    b"ots:looplag",  # each worker's figures and the index of workers
    b"ots:admin:",
)
ACTIVE_INDEX = (b"ots:active:expiry", b"ots:active:size", b"ots:active:info")


def files_in(directory: Path) -> list[str]:
    """The names of the files in a directory (none while it does not exist)."""
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def share_keys(client: redis.Redis) -> list[bytes]:
    """Every key a share or upload left in Redis.

    Service bookkeeping (janitor, statistics, the event feed, rate limits) is left
    out; the index of live shares is included only while it lists something.
    """
    return sorted(key for key in client.scan_iter() if not key.startswith(BOOKKEEPING_PREFIXES))


def uploads_marked(client: redis.Redis) -> int:
    """Uploads under way: each has its liveness mark from its first file byte."""
    return sum(key.startswith(b"ots:upload:") for key in share_keys(client))


def assert_only_tombstone(client: redis.Redis, share: dict[str, Any], reason: bytes) -> None:
    """No record (so no key material) and no upload mark: the tombstone saying why, and the
    revoke pointer (just the share id), which expires with the tombstone."""
    keys = share_keys(client)
    assert [key for key in keys if share["id"].encode() in key] == [
        f"ots:gone:{share['id']}".encode()
    ]
    assert not [key for key in keys if key.startswith((b"ots:share:", b"ots:upload:"))]
    assert client.get(f"ots:gone:{share['id']}") == reason
    tombstone_ttl = client.ttl(f"ots:gone:{share['id']}")
    pointers = [key for key in keys if key.startswith(b"ots:revoke:")]
    for pointer in pointers:
        if client.get(pointer) == share["id"].encode():
            assert 0 < client.ttl(pointer) <= tombstone_ttl


# --- the admin area -----------------------------------------------------------------------


async def login(
    client: QuartClient,
    user: str = ADMIN_USER,
    password: str = ADMIN_PASSWORD,
    **options: Any,
) -> Response:
    """A sign-in form posted to /auth/login."""
    return await client.post(
        "/auth/login", data=urlencoded(user=user, password=password), headers=FORM, **options
    )


async def signed_in(application: Quart) -> QuartClient:
    """A new client of ``application``, signed in to the admin area."""
    client = application.test_client()
    response = await login(client)
    assert response.status_code == 303, await response.get_data(as_text=True)
    return client


async def csrf_of(client: QuartClient) -> str:
    """The signed-in session's CSRF token, the one every form of the dashboard carries."""
    tokens: set[str] = set(CSRF_INPUT.findall(await fetch(client, "/admin")))
    assert len(tokens) == 1, tokens
    return tokens.pop()


async def fetch(client: QuartClient, path: str, **options: Any) -> str:
    """The text of a page that must answer 200."""
    response = await client.get(path, **options)
    assert response.status_code == 200, (path, response.status_code)
    text: str = await response.get_data(as_text=True)
    return text


# --- a live server, and requests to it ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment(**settings: str) -> dict[str, str]:
    """This machine's environment without any setting of ours, plus these settings."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTS_", "ADMIN_")) and name not in SETTING_NAMES
    }
    return {**inherited, **settings}


class LiveServer:
    """``onetimeshare serve`` in a subprocess, for tests that need real sockets."""

    def __init__(self, settings: Settings, workers: int, extra_env: dict[str, str]) -> None:
        self.settings = settings
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.extra_env = extra_env
        self.process: subprocess.Popen[bytes] | None = None
        self.executable = sys.executable  # the interpreter it runs (and spawns workers with)
        self.log_path = settings.data_dir.parent / f"server-{self.port}.log"

    def environment(self) -> dict[str, str]:
        """This machine's environment without any setting, then every setting of
        ``self.settings`` that is not at its default, then ``extra_env``."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("OTS_") and key not in SETTING_NAMES
        }
        # OTS_SERVER=granian runs every live-server test against Granian instead.
        if "OTS_SERVER" in os.environ:
            env["OTS_SERVER"] = os.environ["OTS_SERVER"]
        env.update(self.settings.to_environment())
        env.update(self.extra_env)
        return env

    def start(self, preexec_fn: Callable[[], None] | None = None) -> None:
        """Starts the server; ``preexec_fn`` runs in the child before exec (e.g. rlimits)."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    self.executable,
                    "-m",
                    "onetimeshare",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec_fn,
                start_new_session=True,  # a process group of its own, for kill()
            )
        try:
            self.wait_until_healthy()
        except BaseException:
            self.stop()
            raise

    def wait_until_healthy(self, timeout: float = 30.0) -> None:
        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout, interval=0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        stop_process(process, timeout=20)

    def kill(self) -> None:
        """Die without any cleanup, as on a crash of the machine: the master and its
        workers at once (a worker left alone would drain and clean up). An embedded
        Redis runs in a session of its own and would be left running."""
        process, self.process = self.process, None
        if process is not None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


LiveServerFactory = Callable[..., LiveServer]


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
    return httpx.post(url, headers=BROWSER, timeout=30)


def upload_head(
    content_length: int,
    content_type: str = f"multipart/form-data; boundary={BOUNDARY}",
    headers: dict[str, str] | None = None,
) -> bytes:
    """The head of an upload request for a raw socket, with ``headers`` besides."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return (
        f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{extra}"
        f"Content-Type: {content_type}\r\nContent-Length: {content_length}\r\n\r\n"
    ).encode()


def file_part_head(filename: str = "big.bin") -> bytes:
    """The head of a multipart body's file part: what follows it is the file."""
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


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


# --- the command --------------------------------------------------------------------------


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


# --- waiting on a condition ---------------------------------------------------------------


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
