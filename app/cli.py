"""The ``onetimeshare`` console command."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys

from . import resources
from .config import Settings, SettingsError, wants_json_logs
from .logs import configure as configure_logging

log = logging.getLogger("onetimeshare")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onetimeshare", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the web service with Hypercorn")
    serve.add_argument("--host", help="address to bind (default: $HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: $PORT or 8000)")
    serve.add_argument(
        "--server",
        choices=("hypercorn", "granian"),
        default=os.environ.get("OTS_SERVER", "hypercorn"),
        help="ASGI server (default: $OTS_SERVER or hypercorn); granian is experimental",
    )
    serve.add_argument(
        "--workers", type=int, help="worker processes (default: $OTS_WORKERS or the CPU count)"
    )
    commands.add_parser(
        "hash-password",
        help="print an Argon2id hash of an admin password, for ADMIN_PASSWORD_HASH",
    )
    arguments = parser.parse_args(argv)
    # Before the settings are read: reading them may log (a new secret key, say).
    configure_logging(wants_json_logs(os.environ.get("OTS_LOG_FORMAT", "json")))
    if arguments.command == "serve":
        return _serve(arguments)
    if arguments.command == "hash-password":
        return _hash_password()
    return 2


def _hash_password() -> int:
    from .admin_access import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Admin password: ")
        if getpass.getpass("Again: ") != password:
            print("onetimeshare: the passwords differ", file=sys.stderr)
            return 1
    else:  # piped in, e.g. from a secrets manager
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 12:
        print("onetimeshare: use at least 12 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def _serve(arguments: argparse.Namespace) -> int:
    from .server import run

    for name, value in (
        ("HOST", arguments.host),
        ("PORT", arguments.port),
        ("OTS_WORKERS", arguments.workers),
    ):
        if value is not None:
            os.environ[name] = str(value)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"onetimeshare: configuration error: {error}", file=sys.stderr)
        return 2
    try:
        # Here, before any worker starts: a worker that failed on it would only be
        # replaced, again and again.
        resources.check()
    except resources.MissingResources as error:
        print(f"onetimeshare: {error}", file=sys.stderr)
        return 2
    return run(settings, arguments.server)
