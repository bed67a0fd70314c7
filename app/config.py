"""One typed settings object, read from the environment and validated at start-up."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import math
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError
from redis.connection import parse_url

from .domain.crypto import (
    ARGON2_MAX_MEMORY_KIB,
    ARGON2_MAX_PARALLELISM,
    ARGON2_MAX_TIME_COST,
    Argon2Params,
)
from .domain.metadata import MAX_PASSWORD_TRIES, MAX_SHARE_BYTES, MAX_TEXT_SHARE_BYTES

log = logging.getLogger(__name__)

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

MIN_SECRET_KEY_LENGTH = 32
# Values that show up in tutorials and templates; a key an attacker can guess
# lets them forge sessions.
WELL_KNOWN_SECRET_KEYS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "dev",
        "development",
        "test",
        "testing",
        "password",
        "default",
        "your-secret-key",
        "please-change-me",
        "insecure",
        "supersecret",
        "super-secret",
        "keyboard cat",
        "replace-me",
        "xxxxxxxx",
    }
)
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a key


# Per client address; each category is one budget shared by its routes.
DEFAULT_RATE_LIMITS: dict[str, str] = {
    "upload": "10/minute; 100/day",
    "page": "60/minute",
    "download": "10/minute",  # downloads, reveals, password checks, revokes
    "poll": "600/minute",  # countdown and progress fragments refresh themselves
    "login": "5/minute",
    "admin": "600/minute",
}
# An upload request must average at least this after its grace period (bytes/s, 128 kbit/s):
# a third of a poor 3G uplink, yet a client holding a request open must spend real
# bandwidth on it (4 requests per client: 64 KiB/s per address). Zero turns it off.
DEFAULT_MIN_UPLOAD_RATE = 16 * KIB
# User-Agent substrings of command-line HTTP clients, matched case-insensitively.
DEFAULT_CLI_AGENTS = (
    "curl",
    "wget",
    "httpie",
    "python-requests",
    "python-httpx",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "aria2",
    "libwww-perl",
    "powershell",
    "okhttp",
    "java-http-client",
    "axios",
    "node-fetch",
    "undici",
    "restsharp",
    "insomnia",
    "postman",
)


LOG_FORMATS = ("json", "text")
SERVERS = ("hypercorn", "granian")
# What Hypercorn does here (app/server.py) and Granian does not: each becomes a start-up
# warning when OTS_SERVER=granian.
GRANIAN_DIFFERENCES = (
    "OTS_GRACEFUL_TIMEOUT is not honoured by Granian: on SIGTERM it waits for every "
    "transfer in flight, however long it takes",
    "Granian buffers request heads up to 408 KiB instead of answering 431 over 16 KiB",
    "Granian keeps idle keep-alive connections open by its own rules "
    "(Hypercorn here closes them after 15 s)",
)


# --- rate limit specifications: "10/minute; 100/day" ----------------------------------

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*")


class RateLimitSpecError(ValueError):
    pass


def parse_limits(text: str) -> tuple[tuple[int, int], ...]:
    """'10/minute; 100/day' -> ((10, 60), (100, 86400)). '20/10 seconds' works too."""
    limits = []
    for part in re.split(r"[;,]", text):
        if not part.strip():
            continue
        match = _SPEC.fullmatch(part)
        if match is None:
            raise RateLimitSpecError(f"expected COUNT/UNIT like 10/minute, got {part.strip()!r}")
        count, multiple, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
        if count < 1 or multiple < 1:
            raise RateLimitSpecError(f"counts must be positive, got {part.strip()!r}")
        limits.append((count, multiple * _UNITS[unit]))
    if not limits:
        raise RateLimitSpecError("at least one limit is needed")
    return tuple(limits)


def json_logs(environ: Mapping[str, str] | None = None) -> bool:
    """OTS_LOG_FORMAT alone, validated as ``Settings.from_env`` does: for configuring
    logging before the other settings are read (reading them may log)."""
    env = _Env(os.environ if environ is None else environ)
    return env.choice("OTS_LOG_FORMAT", LOG_FORMATS, "json") == "json"


class SettingsError(ValueError):
    """A setting has a value the service cannot start with; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    secret_key: str
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    public_url: str | None = None
    hsts: bool = False
    log_json: bool = True
    metrics_token: str | None = None
    storage_url: str | None = None
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    max_upload_bytes: int = 1 * GIB
    max_text_bytes: int = 1 * MIB
    expiry_choices: tuple[int, ...] = (300, 3600, 86400, 604800)
    default_expiry: int = 86400
    max_expiry: int = 604800
    max_password_tries: int = 5
    max_password_bytes: int = 1024
    min_free_bytes: int = 512 * MIB
    janitor_interval: float = 300.0
    argon2: Argon2Params = field(
        default_factory=lambda: Argon2Params(time_cost=3, memory_kib=64 * KIB, parallelism=4)
    )
    argon2_max_concurrent: int = 1
    rate_limits_enabled: bool = True
    rate_limits: Mapping[str, tuple[tuple[int, int], ...]] = field(
        default_factory=lambda: {
            category: parse_limits(spec) for category, spec in DEFAULT_RATE_LIMITS.items()
        }
    )
    trusted_proxy_hops: int = 0
    rate_ipv6_prefix: int = 64
    uploads_per_client: int = 4
    upload_slot_seconds: int = 15
    min_upload_rate: int = DEFAULT_MIN_UPLOAD_RATE
    upload_rate_grace: float = 30.0
    block_cli_agents: bool = True
    cli_agents: tuple[str, ...] = DEFAULT_CLI_AGENTS
    admin_user: str = "admin"
    admin_password_hash: str | None = None
    admin_password: str | None = None
    admin_session_seconds: int = 8 * 3600
    admin_cookie_secure: bool = True
    tombstone_seconds: int = 7 * 86400
    idle_timeout: float = 60.0
    graceful_timeout: float = 30.0
    upload_mark_seconds: int = 15
    redis_timeout: float = 5.0
    server: str = "hypercorn"
    # Settings that do nothing in this set-up, and unknown OTS_ variables: logged at
    # start-up, printed by ``onetimeshare check``.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def embedded_redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, store_secret_key: bool = True
    ) -> Settings:
        """Read every setting; raise ``SettingsError`` naming the first bad one.

        With ``store_secret_key=False`` (``onetimeshare check``) nothing is written: an
        unset SECRET_KEY with no stored one yet gets a key for this object only."""
        env = _Env(os.environ if environ is None else environ)
        data_dir = _data_dir(env.text("OTS_DATA_DIR", "data"))
        max_expiry = env.integer("OTS_MAX_EXPIRY", 604800, minimum=1)
        choices = env.integer_list("OTS_EXPIRY_CHOICES", (300, 3600, 86400, 604800))
        if any(choice > max_expiry for choice in choices):
            raise SettingsError(
                f"OTS_EXPIRY_CHOICES: {max(choices)} s is longer than OTS_MAX_EXPIRY "
                f"({max_expiry} s)"
            )
        default_expiry = env.integer(
            "OTS_DEFAULT_EXPIRY", 86400 if 86400 in choices else choices[0], minimum=1
        )
        if default_expiry not in choices:
            raise SettingsError(
                f"OTS_DEFAULT_EXPIRY: {default_expiry} is not one of OTS_EXPIRY_CHOICES "
                f"({', '.join(map(str, choices))})"
            )
        settings = cls(
            data_dir=data_dir,
            # Checked here; an unset one is generated (and stored) once all else is valid.
            secret_key=_configured_secret_key(env.text("SECRET_KEY", "")),
            redis_url=_redis_url(env.text("REDIS_URL", "")),
            host=_host(env.text("HOST", "127.0.0.1") or "127.0.0.1"),
            port=env.integer("PORT", 8000, minimum=0, maximum=65535),
            workers=env.integer("OTS_WORKERS", os.cpu_count() or 1, minimum=1, maximum=256),
            public_url=_public_url(env.text("OTS_PUBLIC_URL", "")),
            hsts=env.boolean("OTS_HSTS", False),
            log_json=env.choice("OTS_LOG_FORMAT", LOG_FORMATS, "json") == "json",
            metrics_token=_metrics_token(env.text("OTS_METRICS_TOKEN", "")),
            storage_url=_storage_url(env.text("STORAGE_URL", "")),
            s3_endpoint=_s3_endpoint(env.text("OTS_S3_ENDPOINT", "")),
            s3_access_key=env.text("OTS_S3_ACCESS_KEY", "") or None,
            s3_secret_key=env.text("OTS_S3_SECRET_KEY", "") or None,
            s3_region=_s3_region(env.text("OTS_S3_REGION", "") or "us-east-1"),
            max_upload_bytes=env.integer(
                "OTS_MAX_UPLOAD_BYTES", 1 * GIB, minimum=1, maximum=MAX_SHARE_BYTES
            ),
            max_text_bytes=env.integer(
                "OTS_MAX_TEXT_BYTES", 1 * MIB, minimum=1, maximum=MAX_TEXT_SHARE_BYTES
            ),
            expiry_choices=choices,
            default_expiry=default_expiry,
            max_expiry=max_expiry,
            max_password_tries=env.integer(
                "OTS_MAX_PASSWORD_TRIES", 5, minimum=1, maximum=MAX_PASSWORD_TRIES
            ),
            min_free_bytes=env.integer("OTS_MIN_FREE_BYTES", 512 * MIB, minimum=0),
            janitor_interval=env.number("OTS_JANITOR_INTERVAL", 300.0, minimum=0.1),
            argon2=Argon2Params(
                time_cost=env.integer(
                    "OTS_ARGON2_TIME_COST", 3, minimum=1, maximum=ARGON2_MAX_TIME_COST
                ),
                memory_kib=env.integer(
                    "OTS_ARGON2_MEMORY_KIB", 64 * KIB, minimum=8 * 4, maximum=ARGON2_MAX_MEMORY_KIB
                ),
                parallelism=env.integer(
                    "OTS_ARGON2_PARALLELISM", 4, minimum=1, maximum=ARGON2_MAX_PARALLELISM
                ),
            ),
            argon2_max_concurrent=env.integer(
                "OTS_ARGON2_MAX_CONCURRENT", 1, minimum=1, maximum=64
            ),
            tombstone_seconds=env.integer("OTS_TOMBSTONE_SECONDS", 7 * 86400, minimum=1),
            admin_user=env.text("ADMIN_USER", "admin") or "admin",
            admin_password_hash=_admin_hash(env.text("ADMIN_PASSWORD_HASH", "")),
            admin_password=env.text("ADMIN_PASSWORD", "") or None,
            admin_session_seconds=env.integer(
                "OTS_ADMIN_SESSION_SECONDS", 8 * 3600, minimum=60, maximum=30 * 86400
            ),
            admin_cookie_secure=env.boolean("OTS_ADMIN_COOKIE_SECURE", True),
            rate_limits_enabled=env.boolean("OTS_RATE_LIMITS", True),
            rate_limits={
                category: env.rate_limits(f"OTS_RATE_{category.upper()}", default)
                for category, default in DEFAULT_RATE_LIMITS.items()
            },
            trusted_proxy_hops=env.integer("TRUSTED_PROXY_HOPS", 0, minimum=0, maximum=10),
            rate_ipv6_prefix=env.integer("OTS_RATE_IPV6_PREFIX", 64, minimum=32, maximum=128),
            uploads_per_client=env.integer("OTS_UPLOADS_PER_CLIENT", 4, minimum=1, maximum=10_000),
            upload_slot_seconds=env.integer("OTS_UPLOAD_SLOT_SECONDS", 15, minimum=2, maximum=3600),
            min_upload_rate=env.integer(
                "OTS_MIN_UPLOAD_RATE", DEFAULT_MIN_UPLOAD_RATE, minimum=0, maximum=1 * GIB
            ),
            upload_rate_grace=env.number("OTS_UPLOAD_RATE_GRACE", 30.0, minimum=1.0),
            block_cli_agents=env.boolean("BLOCK_CLI_AGENTS", True),
            cli_agents=env.word_list("OTS_CLI_AGENTS", DEFAULT_CLI_AGENTS),
            idle_timeout=env.number("OTS_IDLE_TIMEOUT", 60.0, minimum=1.0),
            graceful_timeout=env.number("OTS_GRACEFUL_TIMEOUT", 30.0, minimum=0.1),
            upload_mark_seconds=env.integer("OTS_UPLOAD_MARK_SECONDS", 15, minimum=2, maximum=3600),
            redis_timeout=env.number("OTS_REDIS_TIMEOUT", 5.0, minimum=0.1),
            server=env.choice("OTS_SERVER", SERVERS, "hypercorn"),
        )
        if bool(settings.s3_access_key) != bool(settings.s3_secret_key):
            present, missing = (
                ("OTS_S3_ACCESS_KEY", "OTS_S3_SECRET_KEY")
                if settings.s3_access_key
                else ("OTS_S3_SECRET_KEY", "OTS_S3_ACCESS_KEY")
            )
            raise SettingsError(
                f"{missing}: required when {present} is set (or unset both to use the "
                "AWS_* variables or profiles)"
            )
        if settings.trusted_proxy_hops and not settings.public_url:
            # Links are never built from X-Forwarded-Host, which a client can send itself.
            raise SettingsError(
                "OTS_PUBLIC_URL: required when TRUSTED_PROXY_HOPS is 1 or more; share links "
                "are built from it (e.g. https://share.example.org), never from forwarded headers"
            )
        if settings.argon2.memory_kib < 8 * settings.argon2.parallelism:
            raise SettingsError("OTS_ARGON2_MEMORY_KIB must be at least 8 x OTS_ARGON2_PARALLELISM")
        return dataclasses.replace(
            settings,
            secret_key=settings.secret_key or _unset_secret_key(data_dir, store_secret_key),
            warnings=_warnings(env, settings),
        )


def _warnings(env: _Env, settings: Settings) -> tuple[str, ...]:
    """What the operator set that does nothing in this set-up, and names that are no setting."""
    found: list[str] = []

    def unused(names: tuple[str, ...], why: str) -> None:
        found.extend(f"{name} does nothing {why}" for name in names if env.is_set(name))

    if settings.storage_url:
        unused(("OTS_MIN_FREE_BYTES",), "with STORAGE_URL set: object stores report no free space")
    else:
        unused(
            ("OTS_S3_ENDPOINT", "OTS_S3_ACCESS_KEY", "OTS_S3_SECRET_KEY", "OTS_S3_REGION"),
            "without STORAGE_URL: blobs are stored on local disk",
        )
    if settings.admin_password_hash:
        unused(("ADMIN_PASSWORD",), "when ADMIN_PASSWORD_HASH is set: the hash is used")
    elif not settings.admin_password:
        unused(
            ("ADMIN_USER", "OTS_ADMIN_SESSION_SECONDS", "OTS_ADMIN_COOKIE_SECURE"),
            "without ADMIN_PASSWORD_HASH: the admin area is off",
        )
    if not settings.rate_limits_enabled:
        unused(
            (
                *(f"OTS_RATE_{category.upper()}" for category in DEFAULT_RATE_LIMITS),
                "OTS_RATE_IPV6_PREFIX",
                "OTS_UPLOADS_PER_CLIENT",
                "OTS_UPLOAD_SLOT_SECONDS",
            ),
            "with OTS_RATE_LIMITS=false",
        )
    if not settings.block_cli_agents:
        unused(("OTS_CLI_AGENTS",), "with BLOCK_CLI_AGENTS=false")
    if not settings.min_upload_rate:
        unused(("OTS_UPLOAD_RATE_GRACE",), "with OTS_MIN_UPLOAD_RATE=0")
    if settings.server == "granian":
        found.extend(GRANIAN_DIFFERENCES)
    for name in env.unknown_names("OTS_"):
        close = difflib.get_close_matches(name, env.asked, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        found.append(f"{name} is not a setting and does nothing{hint}")
    return tuple(found)


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.asked: list[str] = []  # every name read, in order

    def _raw(self, name: str, default: str = "") -> str:
        self.asked.append(name)
        return self._environ.get(name, default)

    def is_set(self, name: str) -> bool:
        return bool(self._environ.get(name, "").strip())

    def unknown_names(self, prefix: str) -> list[str]:
        """Variables with our prefix that nothing read: a typo silently meaning a default."""
        return sorted(
            name for name in self._environ if name.startswith(prefix) and name not in self.asked
        )

    def text(self, name: str, default: str) -> str:
        return self._raw(name, default).strip()

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        raw = self._raw(name).strip().lower()
        if not raw:
            return default
        if raw not in choices:
            raise SettingsError(f"{name}: expected {' or '.join(choices)}, got {raw!r}")
        return raw

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name).strip().lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name}: expected true or false, got {raw!r}")

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        raw = self._raw(name).strip()
        if not raw:
            return default
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
        return _in_range(name, value, minimum, maximum)

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        raw = self._raw(name).strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise SettingsError(f"{name}: expected a finite number, got {raw!r}")
        return _in_range(name, value, minimum, None)

    def rate_limits(self, name: str, default: str) -> tuple[tuple[int, int], ...]:
        raw = self._raw(name).strip() or default
        try:
            return parse_limits(raw)
        except RateLimitSpecError as error:
            raise SettingsError(f"{name}: {error}") from None

    def word_list(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self._raw(name).strip()
        if not raw:
            return default
        words = tuple(word.strip().lower() for word in raw.split(",") if word.strip())
        if not words:
            raise SettingsError(f"{name}: expected comma-separated words, got {raw!r}")
        return words

    def integer_list(self, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
        raw = self._raw(name).strip()
        if not raw:
            return default
        try:
            values = tuple(int(part) for part in raw.split(",") if part.strip())
        except ValueError:
            raise SettingsError(
                f"{name}: expected comma-separated whole seconds, got {raw!r}"
            ) from None
        if not values or any(value < 1 for value in values):
            raise SettingsError(f"{name}: needs at least one value, each at least 1 second")
        return tuple(sorted(set(values)))


Number = TypeVar("Number", int, float)


def _in_range(name: str, value: Number, minimum: Number | None, maximum: Number | None) -> Number:
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}: {value} is below the minimum of {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}: {value} is above the maximum of {maximum}")
    return value


def _public_url(configured: str) -> str | None:
    configured = configured.rstrip("/")
    if not configured:
        return None
    parts = urlsplit(configured)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(
            f"OTS_PUBLIC_URL: expected the site's base address, e.g. https://share.example.org, "
            f"got {configured!r}"
        )
    return configured


def _storage_url(configured: str) -> str | None:
    if not configured:
        return None
    if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", configured):
        raise SettingsError(
            "STORAGE_URL: expected s3://bucket/prefix (a bucket name of 3-63 lower-case "
            "letters, digits, dots and hyphens), or unset for local disk"
        )
    return configured


def _s3_endpoint(configured: str) -> str | None:
    if not configured:
        return None
    parts = urlsplit(configured)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query:
        raise SettingsError(
            f"OTS_S3_ENDPOINT: expected the store's address, e.g. http://seaweedfs:8333, "
            f"got {configured!r}"
        )
    return configured


def _s3_region(configured: str) -> str:
    # The shape botocore itself accepts for a region name.
    if not re.fullmatch(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?", configured):
        raise SettingsError(
            f"OTS_S3_REGION: expected a region name, e.g. us-east-1, got {configured!r}"
        )
    return configured


def _redis_url(configured: str) -> str | None:
    """Checked as redis-py will parse it, without connecting; the URL may carry a password,
    so no message repeats it."""
    if not configured:
        return None
    scheme = urlsplit(configured).scheme
    if scheme not in {"redis", "rediss", "unix"}:
        raise SettingsError(
            "REDIS_URL: expected redis://host:port/db, rediss://... or unix:///path/to/socket, "
            f"got a URL starting {scheme + ':' if scheme else 'without a scheme'}"
        )
    try:
        parsed = parse_url(configured)  # type: ignore[no-untyped-call]
    except ValueError as error:
        raise SettingsError(f"REDIS_URL: not a valid Redis URL ({error})") from None
    if scheme == "unix" and not parsed.get("path"):
        raise SettingsError("REDIS_URL: a unix:// URL needs the socket's path")
    database = urlsplit(configured).path.strip("/")
    if scheme != "unix" and database and not database.isdigit():
        # redis-py would silently use database 0.
        raise SettingsError(
            f"REDIS_URL: the database after the host must be a number, got {database!r}"
        )
    return configured


def _host(configured: str) -> str:
    try:
        ipaddress.ip_address(configured)
    except ValueError:
        labels = configured.rstrip(".").split(".")
        if not all(
            re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label)
            for label in labels
        ):
            raise SettingsError(
                f"HOST: expected an address to bind (e.g. 127.0.0.1, 0.0.0.0, ::) or a host "
                f"name, got {configured!r}"
            ) from None
    return configured


def _metrics_token(configured: str) -> str | None:
    # It travels in an Authorization header: only visible ASCII can arrive intact.
    if configured and not re.fullmatch(r"[\x21-\x7e]+", configured):
        raise SettingsError(
            "OTS_METRICS_TOKEN: use visible ASCII characters only (no spaces), e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return configured or None


def _data_dir(configured: str) -> Path:
    data_dir = Path(configured or "data").expanduser().resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise SettingsError(f"OTS_DATA_DIR: {data_dir} exists and is not a directory")
    return data_dir


def _admin_hash(configured: str) -> str | None:
    if not configured:
        return None
    try:
        parameters = extract_parameters(configured)
    except InvalidHashError:
        parameters = None
    if parameters is None or not configured.startswith("$argon2id$"):
        raise SettingsError(
            "ADMIN_PASSWORD_HASH: expected an Argon2id hash ($argon2id$v=19$m=...); "
            "make one with: onetimeshare hash-password"
        )
    return configured


def _configured_secret_key(configured: str) -> str:
    """The configured key, checked; empty if none is."""
    if configured:
        if configured.lower() in WELL_KNOWN_SECRET_KEYS:
            raise SettingsError(
                "SECRET_KEY: this is a well-known example value; "
                "generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'"
            )
        if len(configured) < MIN_SECRET_KEY_LENGTH:
            raise SettingsError(
                f"SECRET_KEY: must be at least {MIN_SECRET_KEY_LENGTH} "
                f"characters, got {len(configured)}"
            )
    return configured


def _unset_secret_key(data_dir: Path, store: bool) -> str:
    if not store and not (data_dir / SECRET_KEY_FILE).exists():
        return secrets.token_urlsafe(48)  # what serve will generate and store
    return _stored_secret_key(data_dir)


def _stored_secret_key(data_dir: Path) -> str:
    """Generate a key once and keep it in the data directory for every worker and restart."""
    path = data_dir / SECRET_KEY_FILE
    try:
        return _read_or_store_key(data_dir, path)
    except OSError as error:
        # Not a traceback: the operator can fix the directory or set the key.
        raise SettingsError(
            f"OTS_DATA_DIR: cannot keep a generated secret key in {data_dir} "
            f"({error.strerror or error}); make it writable, or set SECRET_KEY"
        ) from None


def _read_or_store_key(data_dir: Path, path: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Write a complete file under a private name, then link it into place: the
        # link is atomic, so concurrent workers agree on one key and never read half of one.
        candidate = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(candidate, path)
            log.warning(
                "SECRET_KEY is not set: generated one and stored it in %s. "
                "Set SECRET_KEY in production.",
                path,
            )
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise SettingsError(
            f"{path}: the stored secret key is too short; delete the file "
            "to have a new one generated"
        )
    return key
