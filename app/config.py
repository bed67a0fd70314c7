"""One typed settings object, read from the environment and validated at start-up.

Each setting is declared once, as a field of ``Settings``: its variable, the kind of value
it takes (and so its bounds and the message for a bad value), its default and its help
text (the kinds and the declaring helpers are in config_kinds.py). Derived from those
declarations: ``Settings.from_env``, the defaults of the dataclass,
``Settings.to_environment`` (the tests start servers with it) and the README's settings
table (``make settings-table``; a test fails while the two disagree). The rules between
settings are checked once each was read on its own (``_checked_together``), and the secret
key is generated and stored only after that.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError
from redis.connection import parse_url

from .config_kinds import (
    Boolean,
    Checked,
    Choice,
    Computed,
    Declared,
    Directory,
    Env,
    Integer,
    Limits,
    OrNone,
    RateLimits,
    Real,
    SecondsList,
    Text,
    Variable,
    Words,
    combined,
    declarations,
    required,
    setting,
    variable,
)
from .config_kinds import RateLimitSpecError as RateLimitSpecError
from .config_kinds import SettingsError as SettingsError
from .config_kinds import parse_limits as parse_limits
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

SERVERS = ("hypercorn", "granian")
# What Hypercorn does here (process/server.py) and Granian does not: each becomes a start-up
# warning when OTS_SERVER=granian.
GRANIAN_DIFFERENCES = (
    "OTS_GRACEFUL_TIMEOUT is not honoured by Granian: on SIGTERM it waits for every "
    "transfer in flight, however long it takes",
    "Granian buffers request heads up to 408 KiB instead of answering 431 over 16 KiB",
    "Granian keeps idle keep-alive connections open by its own rules "
    "(Hypercorn here closes them after 15 s)",
)


# --- checks of single values -------------------------------------------------------------


def _public_url(name: str, configured: str) -> str:
    configured = configured.rstrip("/")
    if not configured:
        return ""  # only slashes: no address
    parts = urlsplit(configured)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(
            f"{name}: expected the site's base address, e.g. https://share.example.org, "
            f"got {configured!r}"
        )
    return configured


def _storage_url(name: str, configured: str) -> str:
    if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", configured):
        raise SettingsError(
            f"{name}: expected s3://bucket/prefix (a bucket name of 3-63 lower-case "
            "letters, digits, dots and hyphens), or unset for local disk"
        )
    return configured


def _s3_endpoint(name: str, configured: str) -> str:
    parts = urlsplit(configured)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query:
        raise SettingsError(
            f"{name}: expected the store's address, e.g. http://seaweedfs:8333, got {configured!r}"
        )
    return configured


def _s3_region(name: str, configured: str) -> str:
    # The shape botocore itself accepts for a region name.
    if not re.fullmatch(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?", configured):
        raise SettingsError(f"{name}: expected a region name, e.g. us-east-1, got {configured!r}")
    return configured


def _redis_url(name: str, configured: str) -> str:
    """Checked as redis-py will parse it, without connecting; the URL may carry a password,
    so no message repeats it."""
    scheme = urlsplit(configured).scheme
    if scheme not in {"redis", "rediss", "unix"}:
        raise SettingsError(
            f"{name}: expected redis://host:port/db, rediss://... or unix:///path/to/socket, "
            f"got a URL starting {scheme + ':' if scheme else 'without a scheme'}"
        )
    try:
        parsed = parse_url(configured)  # type: ignore[no-untyped-call]
    except ValueError as error:
        raise SettingsError(f"{name}: not a valid Redis URL ({error})") from None
    if scheme == "unix" and not parsed.get("path"):
        raise SettingsError(f"{name}: a unix:// URL needs the socket's path")
    database = urlsplit(configured).path.strip("/")
    if scheme != "unix" and database and not database.isdigit():
        # redis-py would silently use database 0.
        raise SettingsError(
            f"{name}: the database after the host must be a number, got {database!r}"
        )
    return configured


def _host(name: str, configured: str) -> str:
    try:
        ipaddress.ip_address(configured)
    except ValueError:
        labels = configured.rstrip(".").split(".")
        if not all(
            re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label)
            for label in labels
        ):
            raise SettingsError(
                f"{name}: expected an address to bind (e.g. 127.0.0.1, 0.0.0.0, ::) or a host "
                f"name, got {configured!r}"
            ) from None
    return configured


def _metrics_token(name: str, configured: str) -> str:
    # It travels in an Authorization header: only visible ASCII can arrive intact.
    if not re.fullmatch(r"[\x21-\x7e]+", configured):
        raise SettingsError(
            f"{name}: use visible ASCII characters only (no spaces), e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return configured


def _admin_hash(name: str, configured: str) -> str:
    try:
        parameters = extract_parameters(configured)
    except InvalidHashError:
        parameters = None
    if parameters is None or not configured.startswith("$argon2id$"):
        raise SettingsError(
            f"{name}: expected an Argon2id hash ($argon2id$v=19$m=...); "
            "make one with: onetimeshare hash-password"
        )
    return configured


def _configured_secret_key(name: str, configured: str) -> str:
    """The configured key, checked; empty if none is (one is generated once all else is valid)."""
    if configured:
        if configured.lower() in WELL_KNOWN_SECRET_KEYS:
            raise SettingsError(
                f"{name}: this is a well-known example value; "
                "generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'"
            )
        if len(configured) < MIN_SECRET_KEY_LENGTH:
            raise SettingsError(
                f"{name}: must be at least {MIN_SECRET_KEY_LENGTH} "
                f"characters, got {len(configured)}"
            )
    return configured


RATE_LIMITS = RateLimits()
TEXT = Text()
BOOLEAN = Boolean()


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting of the service; the order is the README's."""

    redis_url: str | None = setting(
        "REDIS_URL",
        OrNone(Checked(_redis_url), unset="embedded Redis"),
        None,
        "Redis to use, e.g. `redis://localhost:6379/0` or `unix:///run/redis.sock`.",
    )
    secret_key: str = field(
        metadata=required(
            "SECRET_KEY",
            Checked(_configured_secret_key),
            "",
            "Signs session cookies. Unset: generated once, stored in `<data dir>/secret_key` "
            "(mode 0600) and shared by every worker, with a warning in the log. Shorter than "
            f"{MIN_SECRET_KEY_LENGTH} characters or a well-known example value: refused.",
            shown="*(generated)*",
        )
    )
    host: str = setting("HOST", Checked(_host), "127.0.0.1", "Address to bind.")
    port: int = setting("PORT", Integer(0, 65535), 8000, "Port to bind.")
    workers: int = setting(
        "OTS_WORKERS",
        Integer(1, 256),
        Computed(lambda: os.cpu_count() or 1, "CPU count"),
        "Hypercorn worker processes, supervised: one that dies is replaced.",
    )
    data_dir: Path = field(
        metadata=required(
            "OTS_DATA_DIR",
            Directory(),
            "data",
            "Encrypted blobs (`blobs/`), the embedded Redis (`redis/`) and the generated "
            "secret key.",
            shown="`./data`",
        )
    )
    public_url: str | None = setting(
        "OTS_PUBLIC_URL",
        OrNone(Checked(_public_url)),
        None,
        "Base of the links handed out, e.g. `https://share.example.org`. Set it in production "
        "so a forged `Host` header cannot change the links; required when "
        "`TRUSTED_PROXY_HOPS` is 1 or more.",
        shown="*(from the request)*",
    )
    max_upload_bytes: int = setting(
        "OTS_MAX_UPLOAD_BYTES",
        Integer(1, MAX_SHARE_BYTES, unit="bytes"),
        1 * GIB,
        "Largest file accepted, counted while streaming.",
    )
    max_text_bytes: int = setting(
        "OTS_MAX_TEXT_BYTES",
        Integer(1, MAX_TEXT_SHARE_BYTES, unit="bytes"),
        1 * MIB,
        "Largest text secret (`OTS_MAX_UPLOAD_BYTES` is the limit of files).",
    )
    expiry_choices: tuple[int, ...] = setting(
        "OTS_EXPIRY_CHOICES",
        SecondsList(),
        (300, 3600, 86400, 604800),
        "Expiry times offered, in seconds, comma-separated; none longer than `OTS_MAX_EXPIRY`.",
    )
    default_expiry: int = setting(
        "OTS_DEFAULT_EXPIRY",
        Integer(1, unit="seconds"),
        86400,
        "Preselected expiry; must be one of the choices. Left unset while the default is "
        "not among them: the shortest choice.",
    )
    max_expiry: int = setting(
        "OTS_MAX_EXPIRY", Integer(1, unit="seconds"), 604800, "Upper bound for any choice."
    )
    max_password_tries: int = setting(
        "OTS_MAX_PASSWORD_TRIES",
        Integer(1, MAX_PASSWORD_TRIES),
        5,
        "Wrong passwords before a share destroys itself.",
    )
    min_free_bytes: int = setting(
        "OTS_MIN_FREE_BYTES",
        Integer(0, unit="bytes"),
        512 * MIB,
        "Free disk space an upload must leave; below it uploads get *507*. Does nothing with "
        "`STORAGE_URL` (S3): object stores report no free space.",
    )
    janitor_interval: float = setting(
        "OTS_JANITOR_INTERVAL",
        Real(0.1, unit="seconds"),
        300.0,
        "Seconds between janitor passes (one also runs at start-up).",
    )
    argon2: Argon2Params = combined(  # noqa: RUF009 - a dataclasses.Field, as with setting()
        Argon2Params,
        time_cost=variable(
            "OTS_ARGON2_TIME_COST",
            Integer(1, ARGON2_MAX_TIME_COST),
            3,
            "Argon2id passes (RFC 9106, second recommendation).",
        ),
        memory_kib=variable(
            "OTS_ARGON2_MEMORY_KIB",
            Integer(8 * 4, ARGON2_MAX_MEMORY_KIB, unit="KiB"),
            64 * KIB,
            "Argon2id memory per hash; at least 8 times `OTS_ARGON2_PARALLELISM`.",
        ),
        parallelism=variable(
            "OTS_ARGON2_PARALLELISM", Integer(1, ARGON2_MAX_PARALLELISM), 4, "Argon2id lanes."
        ),
    )
    argon2_max_concurrent: int = setting(
        "OTS_ARGON2_MAX_CONCURRENT",
        Integer(1, 64),
        1,
        "Argon2id hashes running at once per worker; more wait their turn.",
    )
    tombstone_seconds: int = setting(
        "OTS_TOMBSTONE_SECONDS",
        Integer(1, unit="seconds"),
        7 * 86400,
        "How long a finished share's link keeps saying *why* it is gone.",
    )
    idle_timeout: float = setting(
        "OTS_IDLE_TIMEOUT",
        Real(1.0, unit="seconds"),
        60.0,
        "Seconds an upload or download may make no progress before it is cut.",
    )
    min_upload_rate: int = setting(
        "OTS_MIN_UPLOAD_RATE",
        Integer(0, 1 * GIB, unit="bytes per second"),
        DEFAULT_MIN_UPLOAD_RATE,
        "Bytes per second a request body must average once its grace period is over, or it "
        "is cut with *408* (`0`: off). 128 kbit/s is a third of a poor 3G uplink, yet a "
        "client holding uploads open must spend real bandwidth on them.",
    )
    upload_rate_grace: float = setting(
        "OTS_UPLOAD_RATE_GRACE",
        Real(1.0, unit="seconds"),
        30.0,
        "Seconds of waiting on a request body before the minimum rate applies.",
    )
    redis_timeout: float = setting(
        "OTS_REDIS_TIMEOUT",
        Real(0.1, unit="seconds"),
        5.0,
        "Seconds to wait for Redis before answering *503*.",
    )
    rate_limits_enabled: bool = setting(
        "OTS_RATE_LIMITS", BOOLEAN, True, "Rate limiting on or off."
    )
    # Per client address; each category is one budget shared by its routes.
    rate_limits: Mapping[str, Limits] = combined(
        dict,
        upload=variable(
            "OTS_RATE_UPLOAD",
            RATE_LIMITS,
            parse_limits("10/minute; 100/day"),
            "Uploads per client (address, or IPv6 network: see `OTS_RATE_IPV6_PREFIX`). Every "
            "limit is `COUNT/UNIT` (second, minute, hour, day, or e.g. `20/10 seconds`), "
            "several joined by `;`.",
        ),
        page=variable(
            "OTS_RATE_PAGE",
            RATE_LIMITS,
            parse_limits("60/minute"),
            "Pages: home, landing, revoke confirmation, and the admin login page "
            "(`GET /auth/login`).",
        ),
        download=variable(
            "OTS_RATE_DOWNLOAD",
            RATE_LIMITS,
            parse_limits("10/minute"),
            "Downloads, reveals, password checks and revokes, one budget together.",
        ),
        poll=variable(
            "OTS_RATE_POLL",
            RATE_LIMITS,
            parse_limits("600/minute"),
            "The self-refreshing countdown and upload progress fragments, and `GET /metrics`.",
        ),
        login=variable(
            "OTS_RATE_LOGIN",
            RATE_LIMITS,
            parse_limits("5/minute"),
            "Admin login attempts (`POST /auth/login`).",
        ),
        resume=variable(
            "OTS_RATE_RESUME",
            RATE_LIMITS,
            parse_limits("600/minute"),
            "Resumable-upload requests that add to or look at an upload (tus `PATCH`, "
            "`HEAD`, `DELETE`, the links after completion): retries must not use up the "
            "upload budget, which `POST /tus/` (creating one) counts against.",
        ),
        admin=variable(
            "OTS_RATE_ADMIN",
            RATE_LIMITS,
            parse_limits("600/minute"),
            "Admin pages and their live fragments.",
        ),
    )
    rate_ipv6_prefix: int = setting(
        "OTS_RATE_IPV6_PREFIX",
        Integer(32, 128),
        64,
        "IPv6 clients are counted by this many leading bits: one subscriber's /64 is one "
        "client. IPv4-mapped addresses (`::ffff:a.b.c.d`) count as the IPv4 address.",
    )
    uploads_per_client: int = setting(
        "OTS_UPLOADS_PER_CLIENT",
        Integer(1, 10_000),
        4,
        "Upload requests one client may have in flight at once; beyond it *429* at once, "
        "before any body is read. Off with `OTS_RATE_LIMITS=false`.",
    )
    resumable_upload_seconds: int = setting(
        "OTS_RESUMABLE_UPLOAD_SECONDS",
        Integer(60, 7 * 86400, unit="seconds"),
        86400,
        "How long an unfinished resumable (tus) upload may be continued (its "
        "`Upload-Expires`); then the janitor removes what it stored.",
    )
    resumable_result_seconds: int = setting(
        "OTS_RESUMABLE_RESULT_SECONDS",
        Integer(10, 86400, unit="seconds"),
        600,
        "After a resumable upload completes, its address hands out the share and revoke "
        "links for this long (`GET` with `Accept: application/json`), then answers *410*.",
    )
    upload_slot_seconds: int = setting(
        "OTS_UPLOAD_SLOT_SECONDS",
        Integer(2, 3600, unit="seconds"),
        15,
        "Lifetime of an upload request's slot, refreshed by a heartbeat while the request "
        "runs; a killed worker's slots free up after this.",
    )
    trusted_proxy_hops: int = setting(
        "TRUSTED_PROXY_HOPS",
        Integer(0, 10),
        0,
        "Number of reverse proxies in front that append to `X-Forwarded-For`; only then are "
        "it and `X-Forwarded-Proto` believed, counted from the right (the client address is "
        "then the one those proxies saw). `X-Forwarded-Host` is never believed, so "
        "`OTS_PUBLIC_URL` is required. At 0 the peer address is the client, so a forged "
        "header cannot dodge the limits.",
    )
    block_cli_agents: bool = setting(
        "BLOCK_CLI_AGENTS",
        BOOLEAN,
        True,
        "Answer `406` to command-line clients on download links (see below).",
    )
    cli_agents: tuple[str, ...] = setting(
        "OTS_CLI_AGENTS",
        Words(),
        DEFAULT_CLI_AGENTS,
        "Comma-separated User-Agent substrings (case-insensitive) treated as command-line "
        "clients; an empty User-Agent counts too.",
    )
    upload_mark_seconds: int = setting(
        "OTS_UPLOAD_MARK_SECONDS",
        Integer(2, 3600, unit="seconds"),
        15,
        "Lifetime of an upload's liveness mark, refreshed by a heartbeat while the upload "
        "runs; after a crash, its partial file is swept once the mark lapses.",
    )
    admin_user: str = setting("ADMIN_USER", TEXT, "admin", "The admin account's user name.")
    admin_password_hash: str | None = setting(
        "ADMIN_PASSWORD_HASH",
        OrNone(Checked(_admin_hash)),
        None,
        "Argon2id hash of the admin password, from `onetimeshare hash-password`. With neither "
        "this nor `ADMIN_PASSWORD`, the admin area answers 404.",
    )
    admin_password: str | None = setting(
        "ADMIN_PASSWORD",
        OrNone(TEXT),
        None,
        "Plain admin password, for development only (a warning is logged); unused when "
        "`ADMIN_PASSWORD_HASH` is set.",
    )
    admin_session_seconds: int = setting(
        "OTS_ADMIN_SESSION_SECONDS",
        Integer(60, 30 * 86400, unit="seconds"),
        8 * 3600,
        "Admin sessions end after this, whatever the cookie says.",
    )
    admin_cookie_secure: bool = setting(
        "OTS_ADMIN_COOKIE_SECURE",
        BOOLEAN,
        True,
        "Mark the admin cookie `Secure`. Browsers accept that on `http://localhost` and "
        "`127.0.0.1`; set `false` only to develop on another plain-HTTP host.",
    )
    storage_url: str | None = setting(
        "STORAGE_URL",
        OrNone(Checked(_storage_url), unset="local disk"),
        None,
        "`s3://bucket/prefix` to keep blobs in an S3-compatible store; the bucket is created "
        "at start-up if it is missing.",
    )
    s3_endpoint: str | None = setting(
        "OTS_S3_ENDPOINT",
        OrNone(Checked(_s3_endpoint)),
        None,
        "S3 endpoint, e.g. `http://seaweedfs:8333`; plain `http://` is allowed for it.",
        shown="*(AWS)*",
    )
    s3_access_key: str | None = setting(
        "OTS_S3_ACCESS_KEY",
        OrNone(TEXT),
        None,
        "S3 access key, set together with `OTS_S3_SECRET_KEY` (unset both: the usual "
        "`AWS_*` environment variables apply).",
    )
    s3_secret_key: str | None = setting(
        "OTS_S3_SECRET_KEY",
        OrNone(TEXT),
        None,
        "S3 secret key, set together with `OTS_S3_ACCESS_KEY`.",
    )
    s3_region: str = setting("OTS_S3_REGION", Checked(_s3_region), "us-east-1", "S3 region.")
    metrics_token: str | None = setting(
        "OTS_METRICS_TOKEN",
        OrNone(Checked(_metrics_token), unset="/metrics is 404"),
        None,
        "Bearer token that opens `GET /metrics`.",
    )
    log_json: bool = setting(
        "OTS_LOG_FORMAT",
        Choice({"json": True, "text": False}),
        True,
        "How log lines are written: JSON, one object per line, or plain text.",
    )
    graceful_timeout: float = setting(
        "OTS_GRACEFUL_TIMEOUT",
        Real(0.1, unit="seconds"),
        30.0,
        "Seconds transfers in flight get to finish after SIGTERM; after that they are "
        "cancelled and cleaned up. Hypercorn only: Granian waits for every transfer.",
    )
    server: str = setting(
        "OTS_SERVER",
        Choice({name: name for name in SERVERS}),
        "hypercorn",
        "The ASGI server: Hypercorn, or Granian, the experimental alternative (`pip install "
        "'onetimeshare[granian]'`), which supervises its workers itself and ignores "
        "`OTS_GRACEFUL_TIMEOUT`, the 16 KiB request-head limit and the 15 s keep-alive "
        "timeout (warned at start-up).",
    )
    hsts: bool = setting(
        "OTS_HSTS",
        BOOLEAN,
        False,
        "Send `Strict-Transport-Security` on every response (it is always sent on HTTPS "
        "requests). Set it when TLS ends at a proxy.",
    )

    # Not settings: a fixed limit, and what from_env found.
    max_password_bytes: int = 1024
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
        env = Env(os.environ if environ is None else environ)
        settings = _checked_together(
            cls(**{name: declared.read(env) for name, declared in _declarations()}), env
        )
        return dataclasses.replace(
            settings,
            # An unset key is generated (and stored) only now, with all else valid.
            secret_key=settings.secret_key
            or _unset_secret_key(settings.data_dir, store_secret_key),
            warnings=_warnings(env, settings),
        )

    def to_environment(self) -> dict[str, str]:
        """The variables ``from_env`` reads these settings back from: every value that is
        not its default, and those without a default (the tests start servers with it)."""
        defaults = Settings(data_dir=self.data_dir, secret_key=self.secret_key)
        environment = {}
        for name, declared in _declarations():
            default_parts = dict(declared.values(getattr(defaults, name)))
            for read_from, value in declared.values(getattr(self, name)):
                if declared.required or value != default_parts[read_from]:
                    environment[read_from.name] = read_from.kind.format(value)
        return environment


def _declarations() -> Iterator[tuple[str, Declared]]:
    return declarations(Settings)


def variables() -> list[Variable[Any]]:
    """Every variable ``Settings.from_env`` reads, in the README's order."""
    return [each for _, declared in _declarations() for each in declared.parts.values()]


def _variable_of(field_name: str, part: str = "") -> Variable[Any]:
    return dict(_declarations())[field_name].parts[part]


# Each category is one budget, shared by the routes that name it (web/ratelimit.py limited).
DEFAULT_RATE_LIMITS: dict[str, str] = {
    category: budget.kind.format(budget.default())
    for category, budget in dict(_declarations())["rate_limits"].parts.items()
}


def json_logs(environ: Mapping[str, str] | None = None) -> bool:
    """OTS_LOG_FORMAT alone, validated as ``Settings.from_env`` does: for configuring
    logging before the other settings are read (reading them may log)."""
    env = Env(os.environ if environ is None else environ)
    return bool(_variable_of("log_json").read(env))


def _checked_together(settings: Settings, env: Env) -> Settings:
    """The rules between settings, once each was read on its own."""
    choices, max_expiry = settings.expiry_choices, settings.max_expiry
    if any(choice > max_expiry for choice in choices):
        raise SettingsError(
            f"OTS_EXPIRY_CHOICES: {max(choices)} s is longer than OTS_MAX_EXPIRY ({max_expiry} s)"
        )
    default_expiry = settings.default_expiry
    if not env.is_set("OTS_DEFAULT_EXPIRY") and default_expiry not in choices:
        default_expiry = choices[0]  # the declared default is no choice here
    if default_expiry not in choices:
        raise SettingsError(
            f"OTS_DEFAULT_EXPIRY: {default_expiry} is not one of OTS_EXPIRY_CHOICES "
            f"({', '.join(map(str, choices))})"
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
    return dataclasses.replace(settings, default_expiry=default_expiry)


def _warnings(env: Env, settings: Settings) -> tuple[str, ...]:
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


# --- the generated secret key --------------------------------------------------------------


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
