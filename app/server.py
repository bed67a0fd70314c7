"""Runs Hypercorn for ``onetimeshare serve``, with the embedded Redis when none is configured."""

from __future__ import annotations

import importlib.util
import logging
import os

from hypercorn.config import Config
from hypercorn.run import run as run_hypercorn

from .config import Settings
from .embedded_redis import EmbeddedRedis

log = logging.getLogger(__name__)


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.application_path = "app.asgi:app"
    config.bind = [
        f"[{settings.host}]:{settings.port}"
        if ":" in settings.host
        else f"{settings.host}:{settings.port}"
    ]
    # One worker runs in this process; more are spawned and supervised by Hypercorn.
    config.workers = 0 if settings.workers == 1 else settings.workers
    config.worker_class = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    config.accesslog = None  # request paths carry share tokens; never log them raw
    config.errorlog = "-"
    config.include_server_header = False
    config.graceful_timeout = 30
    config.keep_alive_timeout = 15
    return config


def run(settings: Settings) -> int:
    embedded = None
    if settings.redis_url is None:
        # Started here, before the workers, so they all share this one server.
        embedded = EmbeddedRedis(settings.embedded_redis_dir)
        embedded.ensure_running()
        os.environ["REDIS_URL"] = embedded.url
    log.info(
        "serving on http://%s:%d with %d worker(s)", settings.host, settings.port, settings.workers
    )
    try:
        return run_hypercorn(hypercorn_config(settings)) or 0
    finally:
        if embedded is not None:
            embedded.stop()
