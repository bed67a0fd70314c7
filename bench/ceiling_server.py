"""Serve bench.ceiling:app with the product's Hypercorn configuration."""

from __future__ import annotations

import sys

from hypercorn.run import run

from onetimeshare.config import Settings
from onetimeshare.process.server import hypercorn_config


def main() -> int:
    settings = Settings.from_env()
    config = hypercorn_config(settings)
    config.application_path = "bench.ceiling:app"
    return run(config) or 0


if __name__ == "__main__":
    sys.exit(main())
