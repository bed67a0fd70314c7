"""The ``onetimeshare`` console command."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys

from .. import resources
from ..client import send
from ..config import SERVERS, Settings, SettingsError, json_logs
from ..domain.storage import StoreSetupError
from ..logs import configure as configure_logging
from ..version import __version__
from . import preflight

log = logging.getLogger("onetimeshare")

DESCRIPTION = "OneTimeShare: encrypted files and text secrets that can be downloaded exactly once."
EPILOG = """\
Every setting is an environment variable (see the README); the options of serve and
check set the same variables. Exit status: 0 fine; 1 a part the service needs is unreachable or not
writable (check), the storage cannot be set up (serve), or the input was refused
(hash-password); 2 the configuration, the installation or the command line is wrong.
"""
CONFIGURATION_ERROR = 2  # serve and check: a setting, the installation, the command line
UNAVAILABLE = 1  # a part the configuration names cannot be used, or bad input


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="onetimeshare",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"onetimeshare {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # serve and check take the same options: check looks at what serve would run.
    server_options = argparse.ArgumentParser(add_help=False)
    server_options.add_argument("--host", help="address to bind (default: $HOST or 127.0.0.1)")
    server_options.add_argument("--port", type=int, help="port to bind (default: $PORT or 8000)")
    server_options.add_argument(
        "--server",
        choices=SERVERS,
        help="ASGI server (default: $OTS_SERVER or hypercorn); granian is experimental",
    )
    server_options.add_argument(
        "--workers", type=int, help="worker processes (default: $OTS_WORKERS or the CPU count)"
    )
    commands.add_parser(
        "serve",
        parents=[server_options],
        help="run the web service",
        description="Run the web service (Hypercorn workers under a supervising master).",
    )
    commands.add_parser(
        "check",
        parents=[server_options],
        help="check the configuration and what it points to, without starting anything",
        description=(
            "Validate every setting as serve does, then check the installation's files, "
            "the data directory, Redis (or the embedded server's binary and directory, "
            "without starting it) and the storage (local disk writable, or the bucket "
            "reachable). One line per check; nothing is created or started."
        ),
    )
    commands.add_parser(
        "hash-password",
        help="print an Argon2id hash of an admin password, for ADMIN_PASSWORD_HASH",
        description=(
            "Read an admin password (from the terminal twice, or one line from standard "
            "input) and print its Argon2id hash for ADMIN_PASSWORD_HASH."
        ),
    )
    send.add_parser(commands)
    arguments = parser.parse_args(argv)
    if arguments.command == "hash-password":
        return _hash_password()
    if arguments.command == "send":
        return send.run(arguments)
    _apply_options(arguments)
    try:
        # Before the other settings are read: reading them may log (a new secret key).
        configure_logging(json_logs())
    except SettingsError as error:
        return _configuration_error(error)
    if arguments.command == "check":
        return _check()
    return _serve()


def _apply_options(arguments: argparse.Namespace) -> None:
    """Options on the command line win over the variables they stand for."""
    for name, value in (
        ("HOST", arguments.host),
        ("PORT", arguments.port),
        ("OTS_SERVER", arguments.server),
        ("OTS_WORKERS", arguments.workers),
    ):
        if value is not None:
            os.environ[name] = str(value)


def _configuration_error(error: SettingsError) -> int:
    print(f"onetimeshare: configuration error: {error}", file=sys.stderr)
    return CONFIGURATION_ERROR


def _hash_password() -> int:
    from ..domain.admin_access import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Admin password: ")
        if getpass.getpass("Again: ") != password:
            print("onetimeshare: the passwords differ", file=sys.stderr)
            return UNAVAILABLE
    else:  # piped in, e.g. from a secrets manager
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 12:
        print("onetimeshare: use at least 12 characters", file=sys.stderr)
        return UNAVAILABLE
    print(hash_password(password))
    return 0


def _serve() -> int:
    from .embedded_redis import EmbeddedRedisError
    from .server import run

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        return _configuration_error(error)
    try:
        # Here, before any worker starts: a worker that failed on it would only be
        # replaced, again and again.
        resources.check()
    except resources.MissingResources as error:
        print(f"onetimeshare: {error}", file=sys.stderr)
        return CONFIGURATION_ERROR
    missing_server = preflight.missing_server(settings)
    if missing_server:
        print(f"onetimeshare: {missing_server}", file=sys.stderr)
        return CONFIGURATION_ERROR
    for warning in settings.warnings:
        log.warning("%s", warning)
    # The master writes metrics and the embedded Redis under it before any worker runs.
    data_dir = preflight.check_data_dir(settings)
    if not data_dir.ok:
        print(f"onetimeshare: {data_dir.part}: {data_dir.detail}", file=sys.stderr)
        return UNAVAILABLE
    try:
        preflight.prepare_storage(settings)
    except StoreSetupError as error:
        print(f"onetimeshare: storage: {error}", file=sys.stderr)
        return UNAVAILABLE
    try:
        return run(settings)
    except EmbeddedRedisError as error:
        print(f"onetimeshare: redis: {error}", file=sys.stderr)
        return UNAVAILABLE


def _check() -> int:
    try:
        settings = Settings.from_env(store_secret_key=False)
    except SettingsError as error:
        return _configuration_error(error)
    _say(
        preflight.Outcome(
            "configuration",
            True,
            f"{settings.server} with {settings.workers} worker(s) on "
            f"{settings.host}:{settings.port}, data in {settings.data_dir}",
            settings.warnings
            + preflight.secret_key_warnings(
                settings, bool(os.environ.get("SECRET_KEY", "").strip())
            ),
        )
    )
    status = 0
    try:
        resources.check()
        where = resources.package_path("")
        files = f"{len(resources.REQUIRED)} templates and static files in {where}"
        _say(preflight.Outcome("installation", True, files))
    except resources.MissingResources as error:
        print(f"onetimeshare: {error}", file=sys.stderr)
        status = CONFIGURATION_ERROR
    missing_server = preflight.missing_server(settings)
    if missing_server:
        print(f"onetimeshare: {missing_server}", file=sys.stderr)
        status = CONFIGURATION_ERROR
    for check in (preflight.check_data_dir, preflight.check_redis, preflight.check_storage):
        outcome = check(settings)
        _say(outcome)
        if not outcome.ok and not status:
            status = UNAVAILABLE
    return status


def _say(outcome: preflight.Outcome) -> None:
    """One line per check: what passed on standard output, what failed on standard
    error in the words ``serve`` uses; then the check's warnings."""
    if outcome.ok:
        print(f"{outcome.part}: ok, {outcome.detail}", flush=True)
    else:
        print(f"onetimeshare: {outcome.part}: {outcome.detail}", file=sys.stderr, flush=True)
    for warning in outcome.warnings:
        print(f"warning: {warning}", flush=True)
