"""Unit tests for app/config.py: Settings.from_env with explicit environment mappings."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest

from onetimeshare.config import (
    GIB,
    KIB,
    MIB,
    MIN_SECRET_KEY_LENGTH,
    SECRET_KEY_FILE,
    WELL_KNOWN_SECRET_KEYS,
    Settings,
    SettingsError,
)
from onetimeshare.crypto import Argon2Params

STRONG_KEY = "k3y-" + "x" * 60


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
