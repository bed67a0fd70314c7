"""One typed settings object, read from the environment and validated at start-up."""

from __future__ import annotations

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

from .crypto import (
    ARGON2_MAX_MEMORY_KIB,
    ARGON2_MAX_PARALLELISM,
    ARGON2_MAX_TIME_COST,
    Argon2Params,
)
from .metadata import MAX_PASSWORD_TRIES, MAX_SHARE_BYTES, MAX_TEXT_SHARE_BYTES
from .ratelimit import RateLimitSpecError, parse_limits

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


def wants_json_logs(log_format: str) -> bool:
    """OTS_LOG_FORMAT: JSON lines unless it says "text"."""
    return log_format.strip().lower() != "text"


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

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def embedded_redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting; raise ``SettingsError`` naming the first bad one."""
        env = _Env(os.environ if environ is None else environ)
        data_dir = Path(env.text("OTS_DATA_DIR", "data")).expanduser().resolve()
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
        redis_url = env.text("REDIS_URL", "") or None
        settings = cls(
            data_dir=data_dir,
            secret_key=_secret_key(env.text("SECRET_KEY", ""), data_dir),
            redis_url=redis_url,
            host=env.text("HOST", "127.0.0.1"),
            port=env.integer("PORT", 8000, minimum=0, maximum=65535),
            workers=env.integer("OTS_WORKERS", os.cpu_count() or 1, minimum=1, maximum=256),
            public_url=_public_url(env.text("OTS_PUBLIC_URL", "")),
            hsts=env.boolean("OTS_HSTS", False),
            log_json=wants_json_logs(env.text("OTS_LOG_FORMAT", "json")),
            metrics_token=env.text("OTS_METRICS_TOKEN", "") or None,
            storage_url=_storage_url(env.text("STORAGE_URL", "")),
            s3_endpoint=env.text("OTS_S3_ENDPOINT", "") or None,
            s3_access_key=env.text("OTS_S3_ACCESS_KEY", "") or None,
            s3_secret_key=env.text("OTS_S3_SECRET_KEY", "") or None,
            s3_region=env.text("OTS_S3_REGION", "us-east-1") or "us-east-1",
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
        )
        if settings.trusted_proxy_hops and not settings.public_url:
            # Links are never built from X-Forwarded-Host, which a client can send itself.
            raise SettingsError(
                "OTS_PUBLIC_URL: required when TRUSTED_PROXY_HOPS is 1 or more; share links "
                "are built from it (e.g. https://share.example.org), never from forwarded headers"
            )
        if settings.argon2.memory_kib < 8 * settings.argon2.parallelism:
            raise SettingsError("OTS_ARGON2_MEMORY_KIB must be at least 8 x OTS_ARGON2_PARALLELISM")
        return settings


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, default: str) -> str:
        return self._environ.get(name, default).strip()

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._environ.get(name, "").strip().lower()
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
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
        return _in_range(name, value, minimum, maximum)

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        raw = self._environ.get(name, "").strip()
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
        raw = self._environ.get(name, "").strip() or default
        try:
            return parse_limits(raw)
        except RateLimitSpecError as error:
            raise SettingsError(f"{name}: {error}") from None

    def word_list(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        return tuple(word.strip().lower() for word in raw.split(",") if word.strip())

    def integer_list(self, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
        raw = self._environ.get(name, "").strip()
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
    if not configured or configured.startswith("file:"):
        return None
    if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", configured):
        raise SettingsError("STORAGE_URL: expected s3://bucket/prefix (or unset for local disk)")
    return configured


def _admin_hash(configured: str) -> str | None:
    if not configured:
        return None
    if not configured.startswith("$argon2id$"):
        raise SettingsError(
            "ADMIN_PASSWORD_HASH: expected an Argon2id hash ($argon2id$...); "
            "make one with: onetimeshare hash-password"
        )
    return configured


def _secret_key(configured: str, data_dir: Path) -> str:
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
    return _stored_secret_key(data_dir)


def _stored_secret_key(data_dir: Path) -> str:
    """Generate a key once and keep it in the data directory for every worker and restart."""
    path = data_dir / SECRET_KEY_FILE
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
