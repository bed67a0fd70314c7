"""Runs Hypercorn for ``onetimeshare serve``, with the embedded Redis when none is configured.

The workers run under our own master (process/supervisor.py), which replaces a worker
that dies; the embedded Redis belongs to that master and outlives any worker.
"""

from __future__ import annotations

import importlib.util
import logging
import os

from hypercorn.config import Config

from ..config import Settings
from ..metrics import prepare_multiprocess_dir
from .embedded_redis import EmbeddedRedis
from .supervisor import Supervisor

log = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 16 * 1024


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.application_path = "onetimeshare.process.asgi:app"
    config.bind = [
        f"[{settings.host}]:{settings.port}"
        if ":" in settings.host
        else f"{settings.host}:{settings.port}"
    ]
    # Every worker, even a single one, is a child process of our supervising master.
    config.workers = settings.workers
    config.worker_class = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    config.accesslog = None  # request paths carry share tokens; never log them raw
    # Hypercorn's own messages go through our handler, as JSON lines like the rest.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    # On SIGTERM: stop accepting, let transfers in flight finish for this long, then
    # cancel them (a cancelled upload still removes its partial file).
    config.graceful_timeout = settings.graceful_timeout
    config.keep_alive_timeout = 15
    config.h11_max_incomplete_size = MAX_REQUEST_HEAD
    return config


def run_granian(settings: Settings) -> int:
    """Granian instead of Hypercorn, for comparison; experimental (``pip install granian``).

    Measured here (bench/transfer.py, bench/load.py): transfers 10-25 % faster,
    small-share cycles 14 % slower than Hypercorn with uvloop. Two tests differ:
    Granian buffers up to 408 KiB of request head before refusing it (a 16 KiB cap
    cut its uploads to 107 MB/s), and it resets rather than answers an upload
    refused mid-stream (507). Hence not the default. What it does not honour of the
    set-up above (config.GRANIAN_DIFFERENCES) is logged as a warning at start-up.
    """
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "onetimeshare.process.asgi:app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        log_access=False,  # request paths carry share tokens
        # Supervision here is Granian's own: it replaces a worker that dies.
        respawn_failed_workers=True,
        respawn_interval=1.0,
    ).serve()
    return 0


def run(settings: Settings) -> int:
    embedded = None
    if settings.redis_url is None:
        # Started here, before the workers, so they all share this one server.
        embedded = EmbeddedRedis(settings.embedded_redis_dir)
        embedded.ensure_running()
        os.environ["REDIS_URL"] = embedded.url
    # Before the workers start: they inherit it and write their metrics there.
    prepare_multiprocess_dir(settings.data_dir / "metrics")
    log.info(
        "serving on http://%s:%d with %d worker(s)", settings.host, settings.port, settings.workers
    )
    try:
        if settings.server == "granian":
            return run_granian(settings)
        return Supervisor(hypercorn_config(settings), settings.workers).run()
    finally:
        if embedded is not None:
            embedded.stop()
