"""Unit tests for app/config.py: Settings.from_env with explicit environment mappings."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import secrets
import stat
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from onetimeshare.config import (
    GIB,
    GRANIAN_DIFFERENCES,
    KIB,
    MIB,
    MIN_SECRET_KEY_LENGTH,
    SECRET_KEY_FILE,
    WELL_KNOWN_SECRET_KEYS,
    Settings,
    SettingsError,
    Variable,
    json_logs,
    variables,
)
from onetimeshare.domain.crypto import Argon2Params
from tests.helpers import REPO_ROOT, STRONG_KEY


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def base_env(data_dir: Path) -> dict[str, str]:
    """A minimal environment with an explicit strong key (no key file is written)."""
    return {"OTS_DATA_DIR": str(data_dir), "SECRET_KEY": STRONG_KEY}


def load(base: dict[str, str], **overrides: str) -> Settings:
    return Settings.from_env({**base, **overrides})


def rejected(base: dict[str, str], **overrides: str) -> str:
    with pytest.raises(SettingsError) as info:
        load(base, **overrides)
    return str(info.value)


# --- defaults -------------------------------------------------------------------


def test_defaults(base_env: dict[str, str], data_dir: Path) -> None:
    settings = Settings.from_env(base_env)
    assert settings.data_dir == data_dir.resolve()
    assert settings.secret_key == STRONG_KEY
    assert settings.redis_url is None
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.workers == (os.cpu_count() or 1)
    assert settings.public_url is None
    assert settings.max_upload_bytes == 1 * GIB
    assert settings.expiry_choices == (300, 3600, 86400, 604800)
    assert settings.default_expiry == 86400
    assert settings.max_expiry == 604800
    assert settings.max_password_tries == 5
    assert settings.max_password_bytes == 1024
    assert settings.min_free_bytes == 512 * MIB
    assert settings.janitor_interval == 300.0
    assert settings.argon2 == Argon2Params(time_cost=3, memory_kib=64 * KIB, parallelism=4)
    assert settings.argon2_max_concurrent == 1
    assert settings.tombstone_seconds == 7 * 86400
    assert settings.idle_timeout == 60.0
    assert settings.redis_timeout == 5.0
    assert settings.blob_dir == data_dir.resolve() / "blobs"
    assert settings.embedded_redis_dir == data_dir.resolve() / "redis"


def test_empty_values_mean_defaults(base_env: dict[str, str]) -> None:
    blank = {
        name: "  "
        for name in [
            "PORT",
            "OTS_WORKERS",
            "OTS_MAX_UPLOAD_BYTES",
            "OTS_EXPIRY_CHOICES",
            "OTS_DEFAULT_EXPIRY",
            "OTS_MAX_EXPIRY",
            "OTS_JANITOR_INTERVAL",
            "OTS_ARGON2_TIME_COST",
        ]
    }
    settings = load(base_env, **blank)
    assert settings.port == 8000
    assert settings.workers == (os.cpu_count() or 1)
    assert settings.max_upload_bytes == 1 * GIB
    assert settings.expiry_choices == (300, 3600, 86400, 604800)
    assert settings.default_expiry == 86400
    assert settings.max_expiry == 604800
    assert settings.janitor_interval == 300.0
    assert settings.argon2.time_cost == 3


def test_settings_are_frozen(base_env: dict[str, str]) -> None:
    settings = Settings.from_env(base_env)
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_values_are_read(base_env: dict[str, str]) -> None:
    settings = load(
        base_env,
        HOST=" 0.0.0.0 ",
        PORT=" 8080 ",
        OTS_WORKERS="3",
        OTS_MAX_UPLOAD_BYTES="1_000_000",
        OTS_MAX_PASSWORD_TRIES="10",
        OTS_MIN_FREE_BYTES="0",
        OTS_JANITOR_INTERVAL="2.5",
        OTS_ARGON2_TIME_COST="2",
        OTS_ARGON2_MEMORY_KIB="1024",
        OTS_ARGON2_PARALLELISM="2",
        OTS_ARGON2_MAX_CONCURRENT="4",
        OTS_TOMBSTONE_SECONDS="60",
        OTS_IDLE_TIMEOUT="1e1",
        OTS_REDIS_TIMEOUT="0.25",
    )
    assert settings.host == "0.0.0.0"
    assert settings.port == 8080
    assert settings.workers == 3
    assert settings.max_upload_bytes == 1_000_000
    assert settings.max_password_tries == 10
    assert settings.min_free_bytes == 0
    assert settings.janitor_interval == 2.5
    assert settings.argon2 == Argon2Params(time_cost=2, memory_kib=1024, parallelism=2)
    assert settings.argon2_max_concurrent == 4
    assert settings.tombstone_seconds == 60
    assert settings.idle_timeout == 10.0
    assert settings.redis_timeout == 0.25


def test_data_dir_is_resolved(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"OTS_DATA_DIR": str(tmp_path / "a" / ".." / "b"), "SECRET_KEY": STRONG_KEY}
    )
    assert settings.data_dir == (tmp_path / "b").resolve()
    assert settings.data_dir.is_absolute()


# --- integer and number settings: validation ----------------------------------------

INTEGER_SETTINGS = [
    "PORT",
    "OTS_WORKERS",
    "OTS_MAX_UPLOAD_BYTES",
    "OTS_DEFAULT_EXPIRY",
    "OTS_MAX_EXPIRY",
    "OTS_MAX_PASSWORD_TRIES",
    "OTS_MIN_FREE_BYTES",
    "OTS_ARGON2_TIME_COST",
    "OTS_ARGON2_MEMORY_KIB",
    "OTS_ARGON2_PARALLELISM",
    "OTS_ARGON2_MAX_CONCURRENT",
    "OTS_TOMBSTONE_SECONDS",
]
NUMBER_SETTINGS = ["OTS_JANITOR_INTERVAL", "OTS_IDLE_TIMEOUT", "OTS_REDIS_TIMEOUT"]


@pytest.mark.parametrize("name", INTEGER_SETTINGS)
@pytest.mark.parametrize("raw", ["abc", "1.5", "12abc", "0x10", "1e3", "ten", "--1"])
def test_integer_settings_reject_non_integers(
    name: str, raw: str, base_env: dict[str, str]
) -> None:
    message = rejected(base_env, **{name: raw})
    assert message.startswith(f"{name}:")
    assert "whole number" in message


@pytest.mark.parametrize("name", NUMBER_SETTINGS)
@pytest.mark.parametrize("raw", ["abc", "1,5", "fast", "1.2.3", "5s"])
def test_number_settings_reject_non_numbers(name: str, raw: str, base_env: dict[str, str]) -> None:
    message = rejected(base_env, **{name: raw})
    assert message.startswith(f"{name}:")
    assert "number" in message


@pytest.mark.parametrize("name", NUMBER_SETTINGS)
@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_number_settings_reject_non_finite(name: str, raw: str, base_env: dict[str, str]) -> None:
    """float() parses these, but NaN slips past every range check (all comparisons are false)
    and both crash later: asyncio.timeout(nan) fires at once, int(nan or inf) raises in
    upload_mark_ttl, socket.settimeout(inf) raises OverflowError. Reject them at start-up."""
    message = rejected(base_env, **{name: raw})
    assert name in message


OUT_OF_RANGE = [
    ("PORT", "-1"),
    ("PORT", "65536"),
    ("OTS_WORKERS", "0"),
    ("OTS_WORKERS", "257"),
    ("OTS_MAX_UPLOAD_BYTES", "0"),
    ("OTS_MAX_UPLOAD_BYTES", "-5"),
    ("OTS_MAX_UPLOAD_BYTES", str(1024**4 + 1)),
    ("OTS_DEFAULT_EXPIRY", "0"),
    ("OTS_MAX_EXPIRY", "0"),
    ("OTS_MAX_PASSWORD_TRIES", "0"),
    ("OTS_MAX_PASSWORD_TRIES", "1001"),
    ("OTS_MIN_FREE_BYTES", "-1"),
    ("OTS_ARGON2_TIME_COST", "0"),
    ("OTS_ARGON2_TIME_COST", "11"),
    ("OTS_ARGON2_MEMORY_KIB", "31"),
    ("OTS_ARGON2_MEMORY_KIB", str(1024 * 1024 + 1)),
    ("OTS_ARGON2_PARALLELISM", "0"),
    ("OTS_ARGON2_PARALLELISM", "17"),
    ("OTS_ARGON2_MAX_CONCURRENT", "0"),
    ("OTS_ARGON2_MAX_CONCURRENT", "65"),
    ("OTS_TOMBSTONE_SECONDS", "0"),
    ("OTS_JANITOR_INTERVAL", "0.05"),
    ("OTS_JANITOR_INTERVAL", "-300"),
    ("OTS_IDLE_TIMEOUT", "0.5"),
    ("OTS_REDIS_TIMEOUT", "0"),
    ("OTS_REDIS_TIMEOUT", "0.09"),
]


@pytest.mark.parametrize(("name", "raw"), OUT_OF_RANGE)
def test_settings_reject_out_of_range(name: str, raw: str, base_env: dict[str, str]) -> None:
    message = rejected(base_env, **{name: raw})
    assert message.startswith(f"{name}:")
    assert "minimum" in message or "maximum" in message


IN_RANGE_EDGES = [
    ("PORT", "0", "port", 0),
    ("PORT", "65535", "port", 65535),
    ("OTS_WORKERS", "1", "workers", 1),
    ("OTS_WORKERS", "256", "workers", 256),
    ("OTS_MAX_UPLOAD_BYTES", "1", "max_upload_bytes", 1),
    ("OTS_MAX_PASSWORD_TRIES", "1000", "max_password_tries", 1000),
    ("OTS_ARGON2_MAX_CONCURRENT", "64", "argon2_max_concurrent", 64),
    ("OTS_TOMBSTONE_SECONDS", "1", "tombstone_seconds", 1),
    ("OTS_JANITOR_INTERVAL", "0.1", "janitor_interval", 0.1),
    ("OTS_IDLE_TIMEOUT", "1", "idle_timeout", 1.0),
    ("OTS_REDIS_TIMEOUT", "0.1", "redis_timeout", 0.1),
]


@pytest.mark.parametrize(("name", "raw", "attribute", "expected"), IN_RANGE_EDGES)
def test_settings_accept_range_edges(
    name: str, raw: str, attribute: str, expected: float, base_env: dict[str, str]
) -> None:
    assert getattr(load(base_env, **{name: raw}), attribute) == expected


def test_argon2_edges_accepted(base_env: dict[str, str]) -> None:
    settings = load(
        base_env,
        OTS_ARGON2_TIME_COST="10",
        OTS_ARGON2_MEMORY_KIB=str(1024 * 1024),
        OTS_ARGON2_PARALLELISM="16",
    )
    assert settings.argon2 == Argon2Params(time_cost=10, memory_kib=1024 * 1024, parallelism=16)
    assert settings.argon2.within_bounds  # records are read back against the same bounds
    low = load(base_env, OTS_ARGON2_MEMORY_KIB="32", OTS_ARGON2_PARALLELISM="4")
    assert low.argon2.memory_kib == 32


def test_argon2_memory_must_cover_parallelism(base_env: dict[str, str]) -> None:
    message = rejected(base_env, OTS_ARGON2_MEMORY_KIB="32", OTS_ARGON2_PARALLELISM="5")
    assert "OTS_ARGON2_MEMORY_KIB" in message
    assert "OTS_ARGON2_PARALLELISM" in message


# --- expiry choices --------------------------------------------------------------------


def test_expiry_choices_sorted_and_deduplicated(base_env: dict[str, str]) -> None:
    settings = load(base_env, OTS_EXPIRY_CHOICES=" 3600, 300,300 ,86400,3600,")
    assert settings.expiry_choices == (300, 3600, 86400)
    assert settings.default_expiry == 86400


def test_expiry_default_falls_back_to_shortest_choice(base_env: dict[str, str]) -> None:
    settings = load(base_env, OTS_EXPIRY_CHOICES="7200,60,600")
    assert settings.expiry_choices == (60, 600, 7200)
    assert settings.default_expiry == 60


def test_expiry_explicit_default_among_choices(base_env: dict[str, str]) -> None:
    settings = load(base_env, OTS_EXPIRY_CHOICES="60,600", OTS_DEFAULT_EXPIRY="600")
    assert settings.default_expiry == 600


def test_expiry_choice_equal_to_max_is_accepted(base_env: dict[str, str]) -> None:
    settings = load(base_env, OTS_EXPIRY_CHOICES="60,3600", OTS_MAX_EXPIRY="3600")
    assert settings.expiry_choices == (60, 3600)
    assert settings.max_expiry == 3600


def test_expiry_choice_above_max_rejected(base_env: dict[str, str]) -> None:
    message = rejected(base_env, OTS_EXPIRY_CHOICES="300,7200", OTS_MAX_EXPIRY="3600")
    assert message.startswith("OTS_EXPIRY_CHOICES:")
    assert "7200" in message
    assert "OTS_MAX_EXPIRY" in message


def test_default_choices_above_lowered_max_rejected(base_env: dict[str, str]) -> None:
    message = rejected(base_env, OTS_MAX_EXPIRY="3600")
    assert "OTS_EXPIRY_CHOICES" in message


def test_default_expiry_not_among_choices_rejected(base_env: dict[str, str]) -> None:
    message = rejected(base_env, OTS_DEFAULT_EXPIRY="1234")
    assert message.startswith("OTS_DEFAULT_EXPIRY:")
    assert "1234" in message


def test_default_expiry_not_among_custom_choices_rejected(base_env: dict[str, str]) -> None:
    message = rejected(base_env, OTS_EXPIRY_CHOICES="60,600", OTS_DEFAULT_EXPIRY="86400")
    assert message.startswith("OTS_DEFAULT_EXPIRY:")


@pytest.mark.parametrize("raw", ["abc", "300,abc", "300;3600", "1.5", "0", "300,0", "-60", ",,,"])
def test_expiry_choices_invalid(raw: str, base_env: dict[str, str]) -> None:
    message = rejected(base_env, OTS_EXPIRY_CHOICES=raw)
    assert message.startswith("OTS_EXPIRY_CHOICES:")


# --- SECRET_KEY ----------------------------------------------------------------------


def test_explicit_secret_key_used_and_no_file_written(
    base_env: dict[str, str], data_dir: Path
) -> None:
    settings = Settings.from_env(base_env)
    assert settings.secret_key == STRONG_KEY
    assert not (data_dir / SECRET_KEY_FILE).exists()


def test_secret_key_minimum_length(base_env: dict[str, str]) -> None:
    exact = "a1" * (MIN_SECRET_KEY_LENGTH // 2)
    assert len(exact) == MIN_SECRET_KEY_LENGTH
    assert load(base_env, SECRET_KEY=exact).secret_key == exact
    message = rejected(base_env, SECRET_KEY=exact[:-1])
    assert message.startswith("SECRET_KEY:")
    assert str(MIN_SECRET_KEY_LENGTH) in message


@pytest.mark.parametrize("key", ["x", "short-key", "0123456789"])
def test_secret_key_too_short_rejected(key: str, base_env: dict[str, str]) -> None:
    assert rejected(base_env, SECRET_KEY=key).startswith("SECRET_KEY:")


@pytest.mark.parametrize("key", ["changeme", "secret", "CHANGEME", " Secret ", "keyboard cat"])
def test_well_known_secret_key_rejected(key: str, base_env: dict[str, str]) -> None:
    message = rejected(base_env, SECRET_KEY=key)
    assert message.startswith("SECRET_KEY:")
    assert "well-known" in message


def test_every_well_known_key_rejected(base_env: dict[str, str]) -> None:
    for key in WELL_KNOWN_SECRET_KEYS:
        assert rejected(base_env, SECRET_KEY=key).startswith("SECRET_KEY:")


def test_secret_key_generated_and_stored(data_dir: Path) -> None:
    assert not data_dir.exists()
    settings = Settings.from_env({"OTS_DATA_DIR": str(data_dir)})
    key_file = data_dir / SECRET_KEY_FILE
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(settings.secret_key) >= MIN_SECRET_KEY_LENGTH
    assert key_file.read_text().strip() == settings.secret_key
    # Only the key file is left behind: the private candidate file is cleaned up.
    assert [path.name for path in data_dir.iterdir()] == [SECRET_KEY_FILE]


def test_stored_secret_key_reused(data_dir: Path) -> None:
    first = Settings.from_env({"OTS_DATA_DIR": str(data_dir)})
    second = Settings.from_env({"OTS_DATA_DIR": str(data_dir)})
    assert first.secret_key == second.secret_key
    assert [path.name for path in data_dir.iterdir()] == [SECRET_KEY_FILE]


def test_generated_secret_keys_differ_between_data_dirs(tmp_path: Path) -> None:
    one = Settings.from_env({"OTS_DATA_DIR": str(tmp_path / "one")})
    two = Settings.from_env({"OTS_DATA_DIR": str(tmp_path / "two")})
    assert one.secret_key != two.secret_key


def test_blank_secret_key_means_stored_key(data_dir: Path) -> None:
    settings = Settings.from_env({"OTS_DATA_DIR": str(data_dir), "SECRET_KEY": "   "})
    assert settings.secret_key == (data_dir / SECRET_KEY_FILE).read_text().strip()


def test_existing_stored_key_is_read_and_stripped(data_dir: Path) -> None:
    data_dir.mkdir()
    key = secrets.token_urlsafe(48)
    (data_dir / SECRET_KEY_FILE).write_text(f"  {key}\n\n")
    assert Settings.from_env({"OTS_DATA_DIR": str(data_dir)}).secret_key == key


@pytest.mark.parametrize("content", ["", "\n", "tooshort\n", "x" * (MIN_SECRET_KEY_LENGTH - 1)])
def test_stored_secret_key_too_short_rejected(content: str, data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / SECRET_KEY_FILE).write_text(content)
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"OTS_DATA_DIR": str(data_dir)})
    assert SECRET_KEY_FILE in str(info.value)
    # The bad file is left for the operator to delete, not silently replaced.
    assert (data_dir / SECRET_KEY_FILE).read_text() == content


def test_explicit_key_wins_over_stored_key(data_dir: Path) -> None:
    Settings.from_env({"OTS_DATA_DIR": str(data_dir)})
    settings = Settings.from_env({"OTS_DATA_DIR": str(data_dir), "SECRET_KEY": STRONG_KEY})
    assert settings.secret_key == STRONG_KEY


# --- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://share.example.com/", "https://share.example.com"),
        ("https://share.example.com", "https://share.example.com"),
        ("https://example.com/ots///", "https://example.com/ots"),
        ("  https://example.com/ots/  ", "https://example.com/ots"),
        ("", None),
        ("/", None),
    ],
)
def test_public_url(raw: str, expected: str | None, base_env: dict[str, str]) -> None:
    assert load(base_env, OTS_PUBLIC_URL=raw).public_url == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        ("   ", None),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        (" unix:///run/redis.sock ", "unix:///run/redis.sock"),
    ],
)
def test_redis_url(raw: str, expected: str | None, base_env: dict[str, str]) -> None:
    assert load(base_env, REDIS_URL=raw).redis_url == expected


@pytest.mark.parametrize("hops", ["1", "3"])
def test_public_url_is_required_when_proxies_are_trusted(
    base_env: dict[str, str], hops: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**base_env, "TRUSTED_PROXY_HOPS": hops})
    assert str(refused.value).startswith("OTS_PUBLIC_URL:")
    assert "TRUSTED_PROXY_HOPS" in str(refused.value)
    settings = Settings.from_env(
        {**base_env, "TRUSTED_PROXY_HOPS": hops, "OTS_PUBLIC_URL": "https://share.example.org/"}
    )
    assert settings.public_url == "https://share.example.org"
    assert Settings.from_env(base_env).public_url is None  # without proxies it stays optional


@pytest.mark.parametrize("raw", ["share.example.org", "ftp://share.example.org", "https://", "x?y"])
def test_public_url_must_be_a_web_address(base_env: dict[str, str], raw: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**base_env, "OTS_PUBLIC_URL": raw})
    assert str(refused.value).startswith("OTS_PUBLIC_URL:")


# --- every setting validated ------------------------------------------------------------

# Settings whose every value means what it says: names and passwords.
FREE_TEXT = {"ADMIN_USER", "ADMIN_PASSWORD"}
# One value of each setting that no set-up can mean; each must stop the service.
BAD_VALUES = {
    "REDIS_URL": "localhost:6379",
    "SECRET_KEY": "short",
    "HOST": "not a host",
    "PORT": "http",
    "OTS_WORKERS": "many",
    "OTS_PUBLIC_URL": "share.example.org",
    "OTS_HSTS": "maybe",
    "OTS_LOG_FORMAT": "xml",
    "OTS_METRICS_TOKEN": "two words",
    "STORAGE_URL": "file:///srv/blobs",
    "OTS_S3_ENDPOINT": "seaweedfs:8333",
    "OTS_S3_ACCESS_KEY": "an-access-key-without-its-secret",
    "OTS_S3_SECRET_KEY": "a-secret-without-its-access-key",
    "OTS_S3_REGION": "us east",
    "OTS_MAX_UPLOAD_BYTES": "1G",
    "OTS_MAX_TEXT_BYTES": "0",
    "OTS_EXPIRY_CHOICES": "1h",
    "OTS_DEFAULT_EXPIRY": "7",
    "OTS_MAX_EXPIRY": "-1",
    "OTS_MAX_PASSWORD_TRIES": "lots",
    "OTS_MIN_FREE_BYTES": "-1",
    "OTS_JANITOR_INTERVAL": "5m",
    "OTS_ARGON2_TIME_COST": "0",
    "OTS_ARGON2_MEMORY_KIB": "1",
    "OTS_ARGON2_PARALLELISM": "99",
    "OTS_ARGON2_MAX_CONCURRENT": "0",
    "OTS_TOMBSTONE_SECONDS": "forever",
    "ADMIN_PASSWORD_HASH": "$argon2id$not-a-hash",
    "OTS_ADMIN_SESSION_SECONDS": "10",
    "OTS_ADMIN_COOKIE_SECURE": "sometimes",
    "OTS_RATE_LIMITS": "maybe",
    "OTS_RATE_UPLOAD": "lots",
    "OTS_RATE_PAGE": "60/fortnight",
    "OTS_RATE_DOWNLOAD": "0/minute",
    "OTS_RATE_POLL": "many",
    "OTS_RATE_RESUME": "0/minute",
    "OTS_RESUMABLE_UPLOAD_SECONDS": "59",
    "OTS_RESUMABLE_RESULT_SECONDS": "86401",
    "OTS_RATE_LOGIN": "5",
    "OTS_RATE_ADMIN": "/minute",
    "TRUSTED_PROXY_HOPS": "-1",
    "OTS_RATE_IPV6_PREFIX": "200",
    "OTS_UPLOADS_PER_CLIENT": "0",
    "OTS_UPLOAD_SLOT_SECONDS": "1",
    "OTS_MIN_UPLOAD_RATE": "fast",
    "OTS_UPLOAD_RATE_GRACE": "0",
    "BLOCK_CLI_AGENTS": "sometimes",
    "OTS_CLI_AGENTS": ",",
    "OTS_IDLE_TIMEOUT": "nan",
    "OTS_GRACEFUL_TIMEOUT": "0",
    "OTS_UPLOAD_MARK_SECONDS": "1",
    "OTS_REDIS_TIMEOUT": "0",
    "OTS_SERVER": "foo",
}


class RecordingEnvironment(dict[str, str]):
    """An environment that notes every name it is asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def names_read(base_env: dict[str, str]) -> set[str]:
    environment = RecordingEnvironment(base_env)
    Settings.from_env(environment)
    return environment.asked


def readme_settings() -> set[str]:
    """The variables named in the first column of the README's settings table."""
    names: set[str] = set()
    for line in (REPO_ROOT / "README.md").read_text().splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_every_setting_read_is_documented_and_has_a_refused_value(
    base_env: dict[str, str],
) -> None:
    read = names_read(base_env)
    assert read == readme_settings()
    assert read - FREE_TEXT - {"OTS_DATA_DIR"} == set(BAD_VALUES)  # the data dir: below


# --- one declaration per setting: the table, the environment, the defaults -----------------


def settings_table_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "settings_table", REPO_ROOT / "tools" / "settings_table.py"
    )
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_the_readme_table_is_the_declarations() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    tool = settings_table_tool()
    assert tool.rewrite(readme) == readme, "run `make settings-table` and commit README.md"
    table = readme[readme.index(tool.BEGIN) : readme.index(tool.END)]
    for variable in variables():
        assert f"| `{variable.name}` | " in table
        assert variable.help in table


@pytest.mark.parametrize("variable", variables(), ids=lambda variable: variable.name)
def test_a_default_reads_back_as_itself(variable: Variable[Any]) -> None:
    """What the README shows as the default is what an unset variable means."""
    default = variable.default()
    assert variable.help.endswith(".")
    if default is None or default == "":  # unset: embedded Redis, generated key, ...
        return
    assert variable.kind.parse(variable.name, variable.kind.format(default)) == default


# A valid value of every setting, none of them its default.
CHANGED = {
    "REDIS_URL": "redis://localhost:6379/1",
    "SECRET_KEY": STRONG_KEY,
    "HOST": "0.0.0.0",
    "PORT": "8080",
    "OTS_WORKERS": str((os.cpu_count() or 1) + 1),
    "OTS_DATA_DIR": "data-elsewhere",
    "OTS_PUBLIC_URL": "https://share.example.org/ots/",
    "OTS_MAX_UPLOAD_BYTES": "1_000_000",
    "OTS_MAX_TEXT_BYTES": "2048",
    "OTS_EXPIRY_CHOICES": "7200,60,600",
    "OTS_DEFAULT_EXPIRY": "600",
    "OTS_MAX_EXPIRY": "7200",
    "OTS_MAX_PASSWORD_TRIES": "3",
    "OTS_MIN_FREE_BYTES": "0",
    "OTS_JANITOR_INTERVAL": "2.5",
    "OTS_ARGON2_TIME_COST": "2",
    "OTS_ARGON2_MEMORY_KIB": "1024",
    "OTS_ARGON2_PARALLELISM": "2",
    "OTS_ARGON2_MAX_CONCURRENT": "4",
    "OTS_TOMBSTONE_SECONDS": "60",
    "OTS_IDLE_TIMEOUT": "1e1",
    "OTS_MIN_UPLOAD_RATE": "1000",
    "OTS_UPLOAD_RATE_GRACE": "12.5",
    "OTS_REDIS_TIMEOUT": "0.25",
    "OTS_RATE_LIMITS": "off",
    "OTS_RATE_UPLOAD": "20/10 seconds; 50/day",
    "OTS_RATE_PAGE": "30/minute",
    "OTS_RATE_DOWNLOAD": "5/hour",
    "OTS_RATE_POLL": "100/2 minutes",
    "OTS_RATE_LOGIN": "3/90 seconds",
    "OTS_RATE_ADMIN": "1/second",
    "OTS_RATE_RESUME": "50/minute",
    "OTS_RESUMABLE_UPLOAD_SECONDS": "3600",
    "OTS_RESUMABLE_RESULT_SECONDS": "120",
    "OTS_RATE_IPV6_PREFIX": "56",
    "OTS_UPLOADS_PER_CLIENT": "8",
    "OTS_UPLOAD_SLOT_SECONDS": "30",
    "TRUSTED_PROXY_HOPS": "1",
    "BLOCK_CLI_AGENTS": "no",
    "OTS_CLI_AGENTS": "Curl, wget",
    "OTS_UPLOAD_MARK_SECONDS": "20",
    "ADMIN_USER": "root",
    "ADMIN_PASSWORD_HASH": (
        "$argon2id$v=19$m=1024,t=1,p=1$nvE6g/9C50DmADuhFdgxHg$Uqzw305Xq3MnsIllJPZ9NatcxMTQSyM3Yw6gy+7g3Qs"
    ),
    "ADMIN_PASSWORD": "development only",
    "OTS_ADMIN_SESSION_SECONDS": "3600",
    "OTS_ADMIN_COOKIE_SECURE": "false",
    "STORAGE_URL": "s3://bucket/blobs",
    "OTS_S3_ENDPOINT": "http://seaweedfs:8333",
    "OTS_S3_ACCESS_KEY": "an-access-key",
    "OTS_S3_SECRET_KEY": "its-secret-key",
    "OTS_S3_REGION": "eu-west-1",
    "OTS_METRICS_TOKEN": "a-metrics-token",
    "OTS_LOG_FORMAT": "TEXT",
    "OTS_GRACEFUL_TIMEOUT": "5",
    "OTS_SERVER": "granian",
    "OTS_HSTS": "yes",
}


def test_settings_read_back_from_their_environment(tmp_path: Path) -> None:
    """to_environment is the inverse of from_env: the tests' live servers are started with
    it, so every value a test gives them must arrive."""
    assert set(CHANGED) == {variable.name for variable in variables()}
    changed = Settings.from_env({**CHANGED, "OTS_DATA_DIR": str(tmp_path / "elsewhere")})
    environment = changed.to_environment()
    assert set(environment) == set(CHANGED)  # none of them is at its default
    assert Settings.from_env(environment) == changed
    assert environment["OTS_RATE_UPLOAD"] == "20/10 seconds; 50/day"
    assert environment["OTS_RATE_LOGIN"] == "3/90 seconds"
    assert environment["OTS_RATE_POLL"] == "100/2 minutes"


def test_only_what_differs_from_a_default_is_in_the_environment(
    base_env: dict[str, str], data_dir: Path
) -> None:
    """The defaults of the dataclass are those of from_env: declared once."""
    defaults = Settings(data_dir=data_dir.resolve(), secret_key=STRONG_KEY)
    assert Settings.from_env(base_env) == defaults
    assert defaults.to_environment() == {
        "OTS_DATA_DIR": str(data_dir.resolve()),
        "SECRET_KEY": STRONG_KEY,
    }
    like_the_tests = dataclasses.replace(
        defaults,
        redis_url="unix:///run/redis.sock?db=1",
        expiry_choices=(1, 300, 3600, 86400, 604800),
        max_upload_bytes=8 * MIB,
        min_free_bytes=0,
        janitor_interval=3600,
        argon2=Argon2Params(time_cost=1, memory_kib=1024, parallelism=1),
        idle_timeout=10,
        rate_limits={**defaults.rate_limits, "page": ((3, 60),)},
        rate_limits_enabled=False,
        block_cli_agents=False,
    )
    assert like_the_tests.to_environment() == {
        "OTS_DATA_DIR": str(data_dir.resolve()),
        "SECRET_KEY": STRONG_KEY,
        "REDIS_URL": "unix:///run/redis.sock?db=1",
        "OTS_EXPIRY_CHOICES": "1,300,3600,86400,604800",
        "OTS_MAX_UPLOAD_BYTES": str(8 * MIB),
        "OTS_MIN_FREE_BYTES": "0",
        "OTS_JANITOR_INTERVAL": "3600",
        "OTS_ARGON2_TIME_COST": "1",
        "OTS_ARGON2_MEMORY_KIB": "1024",
        "OTS_ARGON2_PARALLELISM": "1",
        "OTS_IDLE_TIMEOUT": "10",
        "OTS_RATE_PAGE": "3/minute",
        "OTS_RATE_LIMITS": "false",
        "BLOCK_CLI_AGENTS": "false",
    }
    assert Settings.from_env(like_the_tests.to_environment()) == like_the_tests


@pytest.mark.parametrize(("name", "raw"), sorted(BAD_VALUES.items()))
def test_a_bad_value_of_any_setting_is_refused_naming_it(
    name: str, raw: str, base_env: dict[str, str]
) -> None:
    assert name in rejected(base_env, **{name: raw})


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "data"
    a_file.write_text("not a directory")
    message = rejected({"SECRET_KEY": STRONG_KEY}, OTS_DATA_DIR=str(a_file))
    assert message == f"OTS_DATA_DIR: {a_file} exists and is not a directory"


@pytest.mark.parametrize(("name", "raw"), [("OTS_LOG_FORMAT", "XML"), ("OTS_SERVER", "gunicorn")])
def test_choices_name_what_they_accept(name: str, raw: str, base_env: dict[str, str]) -> None:
    message = rejected(base_env, **{name: raw})
    accepted = "json or text" if name == "OTS_LOG_FORMAT" else "hypercorn or granian"
    assert message == f"{name}: expected {accepted}, got {raw.lower()!r}"


def test_log_format_and_server_choices_are_read(base_env: dict[str, str]) -> None:
    assert load(base_env, OTS_LOG_FORMAT=" Text ").log_json is False
    assert load(base_env, OTS_LOG_FORMAT="JSON").log_json is True
    assert load(base_env).server == "hypercorn"
    assert load(base_env, OTS_SERVER="Granian").server == "granian"
    assert json_logs({"OTS_LOG_FORMAT": "text"}) is False
    with pytest.raises(SettingsError, match="OTS_LOG_FORMAT"):
        json_logs({"OTS_LOG_FORMAT": "xml"})


@pytest.mark.parametrize(
    "raw",
    [
        "redis://:hunter2-secret@localhost:6379/zero",
        "http://:hunter2-secret@localhost:6379/0",
        "hunter2-secret@localhost:6379",
    ],
)
def test_a_bad_redis_url_is_refused_without_repeating_its_password(
    raw: str, base_env: dict[str, str]
) -> None:
    message = rejected(base_env, REDIS_URL=raw)
    assert message.startswith("REDIS_URL: ")
    assert "hunter2" not in message


@pytest.mark.parametrize("raw", ["0.0.0.0", "::", "::1", "localhost", "app.internal", "10.1.2.3"])
def test_hosts_accepted(raw: str, base_env: dict[str, str]) -> None:
    assert load(base_env, HOST=raw).host == raw


def test_a_generated_key_is_stored_only_once_every_setting_is_valid(data_dir: Path) -> None:
    with pytest.raises(SettingsError, match="OTS_SERVER"):
        Settings.from_env({"OTS_DATA_DIR": str(data_dir), "OTS_SERVER": "foo"})
    assert not data_dir.exists()


def test_a_key_is_not_stored_when_asked_not_to(data_dir: Path) -> None:
    settings = Settings.from_env({"OTS_DATA_DIR": str(data_dir)}, store_secret_key=False)
    assert len(settings.secret_key) >= MIN_SECRET_KEY_LENGTH
    assert not data_dir.exists()
    stored = Settings.from_env({"OTS_DATA_DIR": str(data_dir)}).secret_key
    assert (
        Settings.from_env({"OTS_DATA_DIR": str(data_dir)}, store_secret_key=False).secret_key
        == stored
    )


def test_a_data_dir_that_cannot_hold_the_key_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    message = rejected({}, OTS_DATA_DIR=str(tmp_path / "a-file" / "data"))
    assert message.startswith("OTS_DATA_DIR: cannot keep a generated secret key in ")


def test_the_hash_that_hash_password_prints_is_accepted(base_env: dict[str, str]) -> None:
    from onetimeshare.domain.admin_access import hash_password

    encoded = hash_password("correct horse battery staple")
    assert load(base_env, ADMIN_PASSWORD_HASH=encoded).admin_password_hash == encoded


@pytest.mark.parametrize(
    "configured",
    [
        "$argon2i$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$aGFzaGhhc2hoYXNo",
        "$2b$12$abcdefghijklmnopqrstuu5lZ7uEu3b0ugZgYq1O/mcuH4r0tCvT.",
        "correct horse battery",
    ],
    ids=["argon2i", "bcrypt", "plain"],
)
def test_settings_refuse_a_hash_that_is_not_argon2id(
    tmp_path: Path, configured: str, correct_horse_hash: str
) -> None:
    environ = {
        "OTS_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "a-settings-test-key-0123456789abcdefghij",
        "ADMIN_PASSWORD_HASH": configured,
    }
    with pytest.raises(SettingsError, match="ADMIN_PASSWORD_HASH"):
        Settings.from_env(environ)
    environ["ADMIN_PASSWORD_HASH"] = correct_horse_hash
    assert Settings.from_env(environ).admin_password_hash == environ["ADMIN_PASSWORD_HASH"]


# --- settings that do nothing here: warnings ---------------------------------------------


def test_defaults_warn_of_nothing(base_env: dict[str, str]) -> None:
    assert load(base_env).warnings == ()


@pytest.mark.parametrize(
    ("overrides", "warning"),
    [
        (
            {"STORAGE_URL": "s3://bucket/blobs", "OTS_MIN_FREE_BYTES": "1000"},
            "OTS_MIN_FREE_BYTES does nothing with STORAGE_URL set: object stores report no "
            "free space",
        ),
        (
            {"OTS_S3_ENDPOINT": "http://seaweedfs:8333"},
            "OTS_S3_ENDPOINT does nothing without STORAGE_URL: blobs are stored on local disk",
        ),
        (
            {"ADMIN_USER": "root"},
            "ADMIN_USER does nothing without ADMIN_PASSWORD_HASH: the admin area is off",
        ),
        (
            {"OTS_RATE_LIMITS": "false", "OTS_UPLOADS_PER_CLIENT": "8"},
            "OTS_UPLOADS_PER_CLIENT does nothing with OTS_RATE_LIMITS=false",
        ),
        (
            {"BLOCK_CLI_AGENTS": "false", "OTS_CLI_AGENTS": "curl"},
            "OTS_CLI_AGENTS does nothing with BLOCK_CLI_AGENTS=false",
        ),
        (
            {"OTS_MIN_UPLOAD_RATE": "0", "OTS_UPLOAD_RATE_GRACE": "10"},
            "OTS_UPLOAD_RATE_GRACE does nothing with OTS_MIN_UPLOAD_RATE=0",
        ),
        (
            {"OTS_MAX_UPLOAD_BYTE": "10"},
            "OTS_MAX_UPLOAD_BYTE is not a setting and does nothing "
            "(did you mean OTS_MAX_UPLOAD_BYTES?)",
        ),
    ],
)
def test_settings_that_do_nothing_here_are_warned_of(
    overrides: dict[str, str], warning: str, base_env: dict[str, str]
) -> None:
    assert load(base_env, **overrides).warnings == (warning,)


def test_admin_password_beside_a_hash_is_warned_of(base_env: dict[str, str]) -> None:
    from onetimeshare.domain.admin_access import hash_password

    settings = load(
        base_env,
        ADMIN_PASSWORD_HASH=hash_password("correct horse battery staple"),
        ADMIN_PASSWORD="development only",
    )
    assert settings.warnings == (
        "ADMIN_PASSWORD does nothing when ADMIN_PASSWORD_HASH is set: the hash is used",
    )


def test_granian_warns_of_what_it_does_not_honour(base_env: dict[str, str]) -> None:
    warnings = load(base_env, OTS_SERVER="granian").warnings
    assert warnings == GRANIAN_DIFFERENCES
    assert any(warning.startswith("OTS_GRACEFUL_TIMEOUT is not honoured") for warning in warnings)
    assert any("431" in warning for warning in warnings)
    assert any("keep-alive" in warning for warning in warnings)


# --- upload limits ------------------------------------------------------------------------


def test_upload_limit_settings(tmp_path: Path) -> None:
    base = {"OTS_DATA_DIR": str(tmp_path), "SECRET_KEY": STRONG_KEY}
    defaults = Settings.from_env(base)
    assert (defaults.uploads_per_client, defaults.upload_slot_seconds) == (4, 15)
    assert (defaults.min_upload_rate, defaults.upload_rate_grace) == (16 * 1024, 30.0)
    assert defaults.rate_ipv6_prefix == 64
    chosen = Settings.from_env(
        {
            **base,
            "OTS_UPLOADS_PER_CLIENT": "1",
            "OTS_UPLOAD_SLOT_SECONDS": "2",
            "OTS_MIN_UPLOAD_RATE": "0",
            "OTS_UPLOAD_RATE_GRACE": "1.5",
            "OTS_RATE_IPV6_PREFIX": "48",
        }
    )
    assert (chosen.uploads_per_client, chosen.upload_slot_seconds) == (1, 2)
    assert (chosen.min_upload_rate, chosen.upload_rate_grace) == (0, 1.5)
    assert chosen.rate_ipv6_prefix == 48


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("OTS_UPLOADS_PER_CLIENT", "0"),
        ("OTS_UPLOAD_SLOT_SECONDS", "1"),
        ("OTS_UPLOAD_SLOT_SECONDS", "3601"),
        ("OTS_MIN_UPLOAD_RATE", "-1"),
        ("OTS_MIN_UPLOAD_RATE", "16k"),
        ("OTS_UPLOAD_RATE_GRACE", "0.5"),
        ("OTS_RATE_IPV6_PREFIX", "31"),
        ("OTS_RATE_IPV6_PREFIX", "129"),
    ],
)
def test_upload_limit_settings_are_checked(tmp_path: Path, name: str, raw: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"OTS_DATA_DIR": str(tmp_path), "SECRET_KEY": STRONG_KEY, name: raw})
    assert str(refused.value).startswith(f"{name}:")
