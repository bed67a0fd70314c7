"""Is the service still quick while it is busy? Landing-page latency and event-loop stalls
while a 1 GiB upload, a 1 GiB download and 4 password checks (production Argon2id) run.

A client fetches a landing page every 50 ms for the whole time; every worker
publishes its event-loop lag to Redis each second (app/process/looplag.py), read here.

    python -m bench.responsiveness [--size 1G] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.harness import (
    BROWSER,
    HIGH_LIMITS,
    make_random_file,
    parse_size,
    percentile,
    product_command,
    serve,
    upload_file,
)
from bench.http1 import Connection


@dataclass
class Observation:
    landing_ms: list[float] = field(default_factory=list)
    landing_errors: int = 0
    worst_lag_ms: float = 0.0
    stalls_over_20ms: int = 0
    password_ms: list[float] = field(default_factory=list)


async def poll_landing(base_url: str, path: str, stop: asyncio.Event, seen: Observation) -> None:
    connection = Connection(base_url, BROWSER)
    while not stop.is_set():
        started = time.perf_counter()
        answer = await connection.request("GET", path)
        seen.landing_ms.append((time.perf_counter() - started) * 1000)
        if answer.status != 200:
            seen.landing_errors += 1
        await asyncio.sleep(max(0.0, 0.05 - (time.perf_counter() - started)))
    await connection.close()


async def watch_loop_lag(socket_path: Path, stop: asyncio.Event, seen: Observation) -> None:
    client = redis.Redis(unix_socket_path=str(socket_path))
    baseline = {
        key: int(client.hget(key, "over_20ms") or 0) for key in client.scan_iter("ots:looplag:*")
    }
    while not stop.is_set():
        await asyncio.sleep(1.0)
        for key in client.scan_iter("ots:looplag:*"):
            window = float(client.hget(key, "window_worst_ms") or 0)
            seen.worst_lag_ms = max(seen.worst_lag_ms, window)
    seen.stalls_over_20ms = sum(
        int(client.hget(key, "over_20ms") or 0) - baseline.get(key, 0)
        for key in client.scan_iter("ots:looplag:*")
    )
    client.close()


async def check_password(base_url: str, path: str, seen: Observation) -> None:
    connection = Connection(base_url, BROWSER)
    started = time.perf_counter()
    answer = await connection.request(
        "POST",
        f"{path}/unlock",
        b"password=bench-password",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    seen.password_ms.append((time.perf_counter() - started) * 1000)
    assert answer.status == 200, answer.status
    await connection.close()


def curl_async(*arguments: str) -> asyncio.Future[subprocess.CompletedProcess[bytes]]:
    return asyncio.ensure_future(
        asyncio.to_thread(
            subprocess.run,
            ["curl", "--silent", "--fail", *arguments],
            capture_output=True,
            check=True,
        )
    )


async def scenario(
    base_url: str,
    big: Path,
    download_url: str,
    landing: str,
    protected: str,
    socket_path: Path,
    loads: set[str],
) -> Observation:
    seen = Observation()
    stop = asyncio.Event()
    poller = asyncio.ensure_future(poll_landing(base_url, landing, stop, seen))
    watcher = asyncio.ensure_future(watch_loop_lag(socket_path, stop, seen))
    await asyncio.sleep(1.0)  # a quiet second first, for the baseline
    heavy: list[asyncio.Future[Any]] = []
    if "upload" in loads:
        heavy.append(
            curl_async(
                "-H",
                "Accept: application/json",
                "-F",
                f"file=@{big}",
                f"{base_url}/upload",
                "-o",
                "/dev/null",
            )
        )
    if "download" in loads:
        heavy.append(curl_async("-A", BROWSER, "-X", "POST", "-o", "/dev/null", download_url))
    if "passwords" in loads:
        heavy += [
            asyncio.ensure_future(check_password(base_url, protected, seen)) for _ in range(4)
        ]
    await asyncio.gather(*heavy)
    stop.set()
    await asyncio.gather(poller, watcher)
    return seen


def benchmark(
    size: int, workers: int, loads: frozenset[str] = frozenset({"upload", "download", "passwords"})
) -> dict[str, float]:
    env = {"OTS_MAX_UPLOAD_BYTES": str(size), "OTS_MIN_FREE_BYTES": "0", **HIGH_LIMITS}
    with tempfile.TemporaryDirectory(prefix="ots-bench-files-") as scratch:
        big = make_random_file(Path(scratch), size)
        with serve(product_command(), workers=workers, env=env) as server:
            _, to_download = upload_file(server.base_url, big)
            _, page = upload_file(server.base_url, make_random_file(Path(scratch), 4096))
            _, locked = upload_file(
                server.base_url, make_random_file(Path(scratch), 4096), "password=bench-password"
            )
            landing = "/d/" + str(page["url"]).rsplit("/d/", 1)[1]
            protected = "/d/" + str(locked["url"]).rsplit("/d/", 1)[1]
            seen = asyncio.run(
                scenario(
                    server.base_url,
                    big,
                    str(to_download["url"]),
                    landing,
                    protected,
                    server.data_dir / "redis" / "redis.sock",
                    set(loads),
                )
            )
    return {
        "landing_requests": float(len(seen.landing_ms)),
        "landing_p50_ms": percentile(seen.landing_ms, 0.5),
        "landing_p99_ms": percentile(seen.landing_ms, 0.99),
        "landing_max_ms": max(seen.landing_ms),
        "landing_errors": float(seen.landing_errors),
        "loop_worst_stall_ms": seen.worst_lag_ms,
        "loop_stalls_over_20ms": float(seen.stalls_over_20ms),
        "password_check_mean_ms": statistics.fmean(seen.password_ms or [0.0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--loads",
        default="upload,download,passwords",
        help="which heavy loads to run at once (to find what causes a stall)",
    )
    arguments = parser.parse_args()
    report = benchmark(
        parse_size(arguments.size), arguments.workers, frozenset(arguments.loads.split(","))
    )
    print(
        f"workers={arguments.workers}: {arguments.size} upload + {arguments.size} download + "
        "4 password checks, landing page every 50 ms"
    )
    for name, value in report.items():
        print(f"  {name:24} {value:10.1f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
