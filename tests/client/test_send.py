"""``onetimeshare send`` against a real server: files through tus, resumed after Ctrl-C,
texts from standard input, the password never on the command line."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.cutting_proxy import CuttingProxy
from tests.helpers import BROWSER, LiveServerFactory, wait_until

MIB = 1024 * 1024
SEND = [sys.executable, "-m", "onetimeshare", "send"]


def environment(cache: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(cache)}


def download(url: str) -> bytes:
    response = httpx.post(url, headers=BROWSER, timeout=60)
    assert response.status_code == 200
    return response.content


def test_an_interrupted_send_resumes_from_the_servers_offset(
    live_server_factory: LiveServerFactory, tmp_path: Path
) -> None:
    server = live_server_factory(workers=1, max_upload_bytes=128 * MIB)
    data = os.urandom(100 * MIB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    cache = tmp_path / "cache"
    state = cache / "onetimeshare" / "uploads.json"
    # A slow link (40 MB/s), so there is time to interrupt it halfway.
    with CuttingProxy(server.port, client_bytes_per_second=40e6) as proxy:
        command = [*SEND, str(source), "--server", proxy.url]
        first = subprocess.Popen(
            command, env=environment(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

        def halfway() -> bool:
            if not state.exists():
                return False
            url = next(iter(json.loads(state.read_text()).values()))
            head = httpx.head(url, headers={"Tus-Resumable": "1.0.0"})
            return int(head.headers.get("Upload-Offset", 0)) >= 16 * MIB

        wait_until(halfway, timeout=30)
        first.send_signal(signal.SIGINT)
        _, errors = first.communicate(timeout=30)
        assert first.returncode == 130, errors
        assert b"run the same command again to resume" in errors
        assert state.stat().st_mode & 0o777 == 0o600
        saved = state.read_text()
        assert "big.bin" not in saved  # the upload's address only

        again = subprocess.run(
            [*SEND, str(source), "--server", proxy.url, "--json"],
            env=environment(cache),
            capture_output=True,
            timeout=120,
        )
    assert again.returncode == 0, again.stderr
    resumed_at = int(again.stderr.split(b"Resuming at ")[1].split()[0])
    assert 16 * MIB <= resumed_at < len(data)
    answer = json.loads(again.stdout)
    assert answer["size"] == len(data)
    assert not state.exists()  # forgotten once complete
    token = answer["url"].rsplit("/d/", 1)[1]
    got = download(f"{server.base_url}/d/{token}")
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_a_text_from_stdin_with_a_password_read_without_the_command_line(
    live_server_factory: LiveServerFactory, tmp_path: Path
) -> None:
    server = live_server_factory(workers=1)
    password = "correct horse battery"
    # No controlling terminal (a new session): the password is the first line of stdin,
    # the text the rest.
    process = subprocess.Popen(
        [*SEND, "-", "--text", "--password", "--json", "--server", server.base_url],
        env=environment(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes()
    assert password.encode() not in command_line
    out, errors = process.communicate(f"{password}\nDATABASE_URL=postgres://x\n".encode(), 60)
    assert process.returncode == 0, errors
    answer = json.loads(out)
    assert answer["protected"] is True
    token = answer["url"].rsplit("/d/", 1)[1]
    reveal = httpx.post(
        f"{server.base_url}/d/{token}",
        data={"password": password},
        headers=BROWSER,
        timeout=30,
    )
    assert reveal.status_code == 200
    assert "DATABASE_URL=postgres://x" in reveal.text


def test_refusals_are_one_line_and_exit_1(
    live_server_factory: LiveServerFactory, tmp_path: Path
) -> None:
    server = live_server_factory(workers=1)
    source = tmp_path / "small.txt"
    source.write_text("hello")
    result = subprocess.run(
        [*SEND, str(source), "--expires", "12345", "--server", server.base_url],
        env=environment(tmp_path),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count(b"\n") == 1
    assert b"onetimeshare send:" in result.stderr
    assert b"Traceback" not in result.stderr
    missing = subprocess.run(
        [*SEND, str(tmp_path / "nope"), "--server", server.base_url],
        env=environment(tmp_path),
        capture_output=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert b"cannot read" in missing.stderr
