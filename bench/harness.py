"""Shared benchmark plumbing: start servers as users do, measure RSS, drive curl."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from onetimeshare.process.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
# Download links refuse command-line clients (BLOCK_CLI_AGENTS), so curl says it is a browser.
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) onetimeshare-bench"
# The benchmarks measure the real path, limiter included, with budgets out of reach.
HIGH_LIMITS = {
    **{f"OTS_RATE_{name}": "1000000/minute" for name in ("UPLOAD", "PAGE", "DOWNLOAD", "POLL")},
    # Every load client uploads from 127.0.0.1 at once.
    "OTS_UPLOADS_PER_CLIENT": "10000",
}
SECRET_KEY = "benchmark-secret-key-0123456789abcdefghijklmnop"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the master's workers, or the process itself."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
        # The embedded Redis and multiprocessing's resource tracker are children too.
        workers = [
            pid
            for pid in pids
            if not any(other in _cmdline(pid) for other in (b"redis-server", b"resource_tracker"))
        ]
        return workers or [self.process.pid]

    def reset_peak_rss(self) -> None:
        for pid in self.worker_pids():
            # Linux: writing 5 resets the peak resident set size (VmHWM).
            Path(f"/proc/{pid}/clear_refs").write_text("5")

    def peak_rss_mib(self) -> float:
        """The largest peak RSS among the workers, in MiB."""
        peaks = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return max(peaks)

    def tree_pids(self) -> list[int]:
        """Every live process of the server: the master, its workers, its Redis, and so on."""
        return process_tree(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the whole server tree has used so far: see tree_cpu_seconds."""
        return tree_cpu_seconds(self.process.pid)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants, from /proc (children of every thread)."""
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            with suppress(FileNotFoundError):
                queue += [int(child) for child in (task / "children").read_text().split()]
    return found


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root``'s process tree, read from /proc/<pid>/stat.

    Each live process counts its own time (all threads) plus that of its children
    it has already reaped (cutime, cstime), so a worker that exited still counts and
    nothing counts twice. The resolution is a clock tick (10 ms) per process: measure
    over seconds, not single requests. Read on the server side, the figure does not
    depend on how much CPU the load client burns.
    """
    ticks = 0
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue  # exited meanwhile: its parent's cutime has it once reaped
        # The command name (field 2) may hold spaces; the fields after it do not.
        fields = stat.rpartition(")")[2].split()
        # utime, stime, cutime, cstime are fields 14-17; fields[0] here is field 3.
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


@contextmanager
def serve(
    command: list[str],
    *,
    workers: int,
    env: dict[str, str] | None = None,
    data_dir: Path | None = None,
) -> Iterator[Server]:
    """Run a server command until the block ends; wait for /healthz first."""
    own_dir = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="ots-bench-")) if own_dir else data_dir
    assert directory is not None
    port = free_port()
    environment = {
        **os.environ,
        "OTS_DATA_DIR": str(directory),
        "SECRET_KEY": SECRET_KEY,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "OTS_WORKERS": str(workers),
        **(env or {}),
    }
    log = open(directory / "server.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    server = Server(process, f"http://127.0.0.1:{port}", directory)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError((directory / "server.log").read_text()[-3000:])
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        yield server
    finally:
        stop_process(process, timeout=30)
        log.close()
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)


def product_command() -> list[str]:
    return [sys.executable, "-m", "onetimeshare", "serve"]


def ceiling_command() -> list[str]:
    """The product's own server stack doing no work (bench/ceiling.py)."""
    return [sys.executable, "-m", "bench.ceiling_server"]


def bare_ceiling_command() -> list[str]:
    """A bare asyncio socket server doing no work (bench/bare_ceiling.py)."""
    return [sys.executable, "-m", "bench.bare_ceiling"]


def reference_command() -> list[str]:
    """The reference Flask app under gunicorn 4 x 2 (bench/reference/); needs the bench extra."""
    return [sys.executable, "-m", "bench.reference.serve"]


def curl(*arguments: str) -> tuple[float, str]:
    """Run curl; return (seconds, body). curl is the client because it is not the bottleneck."""
    result = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--fail-with-body",
            "--user-agent",
            BROWSER,
            "--max-time",
            "600",
            "--write-out",
            "\n%{time_total}",
            *arguments,
        ],
        capture_output=True,
        check=True,
    )
    body, _, seconds = result.stdout.rpartition(b"\n")
    return float(seconds), body.decode(errors="replace")


def upload_file(base_url: str, path: Path, *fields: str) -> tuple[float, dict[str, object]]:
    extra = [item for field in fields for item in ("-F", field)]
    seconds, body = curl(
        "-H", "Accept: application/json", "-F", f"file=@{path}", *extra, f"{base_url}/upload"
    )
    return seconds, json.loads(body)


def make_random_file(directory: Path, size: int) -> Path:
    path = directory / f"random-{size}.bin"
    if not path.exists() or path.stat().st_size != size:
        with open(path, "wb") as file:
            left = size
            while left:
                piece = min(left, 16 * 1024 * 1024)
                file.write(os.urandom(piece))
                left -= piece
    return path


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the values lie (nearest rank); NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def human_size(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} B"
