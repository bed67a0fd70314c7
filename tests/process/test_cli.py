"""The ``onetimeshare`` command: --version, --help, and ``check`` beside ``serve``.

Each runs ``python -m onetimeshare`` in a subprocess with an explicit environment.
``check`` against object stores is in tests/process/test_preflight.py, beside a real
SeaweedFS.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from onetimeshare.version import __version__
from tests.helpers import (
    TEST_SECRET_KEY,
    clean_environment,
    free_port,
    run_command,
    serve_until_exit,
)


def test_version_is_the_package_version() -> None:
    result = run_command("--version", env=clean_environment())
    assert result.returncode == 0
    assert result.stdout == f"onetimeshare {__version__}\n"


def test_help_names_every_command_and_the_exit_statuses() -> None:
    result = run_command("--help", env=clean_environment())
    assert result.returncode == 0
    for command in ("serve", "check", "hash-password"):
        assert f"\n    {command}" in result.stdout
    assert "Exit status: 0 fine; 1" in " ".join(result.stdout.split())
    check_help = run_command("check", "--help", env=clean_environment())
    assert "--server {hypercorn,granian}" in check_help.stdout


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("OTS_LOG_FORMAT", "xml", "OTS_LOG_FORMAT: expected json or text, got 'xml'"),
        ("OTS_SERVER", "foo", "OTS_SERVER: expected hypercorn or granian, got 'foo'"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL: expected redis://host:port/db"),
    ],
)
def test_serve_and_check_refuse_a_bad_setting_with_the_same_message(
    tmp_path: Path, name: str, raw: str, message: str
) -> None:
    env = clean_environment(OTS_DATA_DIR=str(tmp_path / "data"), **{name: raw})
    served = serve_until_exit(env)
    checked = run_command("check", env=env)
    line = f"onetimeshare: configuration error: {message}"
    for result in (served, checked):
        assert result.returncode == 2
        assert result.stderr.startswith(line), result.stderr
        assert "Traceback" not in result.stderr
    assert served.stderr == checked.stderr
    assert not (tmp_path / "data").exists()  # refused before a secret key was generated


def test_options_are_checked_as_their_variables(tmp_path: Path) -> None:
    env = clean_environment(OTS_DATA_DIR=str(tmp_path), SECRET_KEY=TEST_SECRET_KEY)
    result = run_command("check", "--port", "70000", env=env)
    assert result.returncode == 2
    assert result.stderr == (
        "onetimeshare: configuration error: PORT: 70000 is above the maximum of 65535\n"
    )


def test_check_of_a_fresh_set_up_starts_and_creates_nothing(tmp_path: Path) -> None:
    """No REDIS_URL, local disk, no SECRET_KEY: what `make run` does on a fresh machine."""
    data_dir = tmp_path / "data"
    result = run_command("check", env=clean_environment(OTS_DATA_DIR=str(data_dir)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "configuration",
        "warning",
        "installation",
        "data directory",
        "redis",
        "storage",
    ]
    assert lines[0].startswith("configuration: ok, hypercorn with ")
    assert lines[1] == (
        f"warning: SECRET_KEY is not set: serve will generate one and store it in "
        f"{data_dir}/secret_key. Set SECRET_KEY in production."
    )
    assert lines[3] == f"data directory: ok, {data_dir} will be created (in {tmp_path}, writable)"
    assert lines[4].startswith("redis: ok, embedded (not started): ")
    assert lines[5].startswith(f"storage: ok, local disk: {data_dir}/blobs will be created")
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []  # no key, no Redis, no blob directory


def test_check_writes_into_an_existing_data_dir_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "blobs").mkdir()
    env = clean_environment(OTS_DATA_DIR=str(tmp_path), SECRET_KEY=TEST_SECRET_KEY)
    result = run_command("check", env=env)
    assert result.returncode == 0, result.stderr
    assert f"data directory: ok, {tmp_path} is writable" in result.stdout.splitlines()
    assert f"storage: ok, local disk: {tmp_path}/blobs is writable, " in result.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["blobs"]
    assert list((tmp_path / "blobs").iterdir()) == []


def test_check_asks_the_configured_redis(tmp_path: Path, redis_url: str) -> None:
    env = clean_environment(
        OTS_DATA_DIR=str(tmp_path), SECRET_KEY=TEST_SECRET_KEY, REDIS_URL=redis_url
    )
    result = run_command("check", env=env)
    assert result.returncode == 0, result.stderr
    assert f"redis: ok, {redis_url} answers (Redis " in result.stdout


def test_check_fails_on_a_redis_that_does_not_answer_and_hides_its_password(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there
    env = clean_environment(
        OTS_DATA_DIR=str(tmp_path),
        SECRET_KEY=TEST_SECRET_KEY,
        REDIS_URL=f"redis://:hunter2-password@127.0.0.1:{port}/0",
    )
    result = run_command("check", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"onetimeshare: redis: redis://:***@127.0.0.1:{port}/0 does not answer: "
    )
    assert "hunter2" not in result.stdout + result.stderr
    # The other parts were still checked.
    assert "storage: ok, local disk: " in result.stdout


def test_serve_and_check_fail_on_a_data_dir_they_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    data_dir = tmp_path / "a-file" / "data"
    env = clean_environment(OTS_DATA_DIR=str(data_dir), SECRET_KEY=TEST_SECRET_KEY)
    checked = run_command("check", env=env)
    assert checked.returncode == 1
    assert (
        f"onetimeshare: data directory: OTS_DATA_DIR: {tmp_path}/a-file is not a directory"
        in checked.stderr.splitlines()
    )
    assert f"onetimeshare: storage: local disk: {tmp_path}/a-file is not a directory" in (
        checked.stderr.splitlines()
    )
    served = serve_until_exit(env)
    assert served.returncode == 1
    assert served.stderr.splitlines()[-1] in checked.stderr.splitlines()
    assert "Traceback" not in served.stderr + checked.stderr


def test_check_prints_the_warnings_serve_logs(tmp_path: Path) -> None:
    env = clean_environment(
        OTS_DATA_DIR=str(tmp_path),
        SECRET_KEY=TEST_SECRET_KEY,
        OTS_SERVER="granian",
        OTS_S3_REGION="eu-west-1",
        OTS_MAX_UPLOAD_BYTE="10",
    )
    result = run_command("check", env=env)
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert warnings[0] == (
        "warning: OTS_S3_REGION does nothing without STORAGE_URL: blobs are stored on local disk"
    )
    assert warnings[1].startswith("warning: OTS_GRACEFUL_TIMEOUT is not honoured by Granian")
    assert warnings[-1] == (
        "warning: OTS_MAX_UPLOAD_BYTE is not a setting and does nothing "
        "(did you mean OTS_MAX_UPLOAD_BYTES?)"
    )
    assert "configuration: ok, granian with " in result.stdout
    assert "storage: ok, " in result.stdout
    if importlib.util.find_spec("granian") is not None:  # the optional extra is installed
        assert result.returncode == 0, result.stderr
        return
    # Without it serve would not start, so neither does check pass; both say what to do.
    missing = (
        "onetimeshare: OTS_SERVER is granian, which is not installed: "
        "pip install 'onetimeshare[granian]', or use hypercorn\n"
    )
    assert result.returncode == 2
    assert result.stderr == missing
    served = serve_until_exit(env)
    assert served.returncode == 2
    assert served.stderr.endswith(missing)


def test_hash_password_ignores_the_service_settings() -> None:
    """It needs none of them: a broken configuration does not stop an operator fixing it."""
    env = clean_environment(OTS_LOG_FORMAT="xml", OTS_SERVER="foo")
    result = run_command("hash-password", env=env, stdin="correct horse battery staple\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("$argon2id$")


def test_the_hash_password_command_prints_a_verifiable_hash() -> None:
    password = "correct horse battery staple"
    result = run_command("hash-password", stdin=password + "\n")
    assert result.returncode == 0, result.stderr
    encoded = result.stdout.strip()
    assert encoded.startswith("$argon2id$")
    assert len(result.stdout.strip().splitlines()) == 1
    assert PasswordHasher().verify(encoded, password)
    assert password not in result.stdout + result.stderr


def test_the_hash_password_command_refuses_a_short_password() -> None:
    result = run_command("hash-password", stdin="eleven-char\n")  # 11 characters
    assert result.returncode == 1
    assert result.stdout == ""
    assert "12 characters" in result.stderr


def test_serve_refuses_to_start_behind_proxies_without_a_public_url(
    tmp_path: Path, redis_url: str
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTS_")}
    # The test's Redis, so that no embedded one is started (and left) if it did start.
    env.update(
        {
            "OTS_DATA_DIR": str(tmp_path),
            "REDIS_URL": redis_url,
            "TRUSTED_PROXY_HOPS": "1",
            "PORT": "0",
        }
    )
    result = serve_until_exit(env)
    assert result.returncode == 2
    assert "OTS_PUBLIC_URL: required when TRUSTED_PROXY_HOPS" in result.stderr
    assert "Traceback" not in result.stderr
