"""Many small shares at once: N clients each loop upload -> landing page -> download.

Starts the real server (``onetimeshare serve``, embedded Redis, rate limits on but
raised far above the load, so the limiter's cost is measured too), runs the
clients for a fixed time, and prints cycles per second, latency percentiles per
step, errors, and checks the invariant: every share created was downloaded
exactly once (a second download attempt must get 410) and no blob or record is
left behind.

    python -m bench.load [--clients 32] [--seconds 10] [--workers 2] [--size 4096] [--password]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.harness import BROWSER, HIGH_LIMITS, percentile, product_command, serve
from bench.http1 import Connection, multipart


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"upload": [], "landing": [], "download": []}
    )
    cycles: int = 0
    errors: list[str] = field(default_factory=list)
    created: int = 0
    downloaded: int = 0
    second_download_410: int = 0


async def client_loop(
    base_url: str,
    payload: bytes,
    password: str | None,
    deadline: float,
    tally: Tally,
    verify_every: int,
) -> None:
    fields = {"expires_in": "3600"}
    if password:
        fields["password"] = password
    body, content_type = multipart(fields, "small.bin", payload)
    upload_headers = {"Content-Type": content_type, "Accept": "application/json"}
    form = f"password={password}".encode() if password else b""
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
    connection = Connection(base_url, BROWSER)
    try:
        while time.monotonic() < deadline:
            try:
                await one_cycle(
                    connection,
                    body,
                    upload_headers,
                    form,
                    form_headers,
                    payload,
                    tally,
                    verify_every,
                )
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                tally.errors.append(type(error).__name__)
                await connection.close()
    finally:
        await connection.close()


async def one_cycle(
    connection: Connection,
    body: bytes,
    upload_headers: dict[str, str],
    form: bytes,
    form_headers: dict[str, str],
    payload: bytes,
    tally: Tally,
    verify_every: int,
) -> None:
    started = time.perf_counter()
    created = await connection.request("POST", "/upload", body, upload_headers)
    tally.latencies["upload"].append(time.perf_counter() - started)
    if created.status != 201:
        tally.errors.append(f"upload {created.status}")
        return
    tally.created += 1
    path = "/d/" + json.loads(created.body)["url"].rsplit("/d/", 1)[1]

    started = time.perf_counter()
    landing = await connection.request("GET", path)
    tally.latencies["landing"].append(time.perf_counter() - started)
    if landing.status != 200:
        tally.errors.append(f"landing {landing.status}")

    started = time.perf_counter()
    download = await connection.request("POST", path, form, form_headers)
    tally.latencies["download"].append(time.perf_counter() - started)
    if download.status != 200 or download.body != payload:
        tally.errors.append(f"download {download.status}")
        return
    tally.downloaded += 1
    tally.cycles += 1
    if tally.cycles % verify_every == 0:
        again = await connection.request("POST", path, form, form_headers)
        if again.status == 410:
            tally.second_download_410 += 1
        else:
            tally.errors.append(f"second download {again.status}")


def leftovers(data_dir: Path) -> tuple[int, int]:
    """Blobs and records left once the server has finished its last clean-ups.

    A blob is deleted when its download's response ends, a moment after the client
    has the last byte, so the count is given a few seconds to reach zero.
    """
    deadline = time.monotonic() + 5
    while any((data_dir / "blobs").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    blobs = sum(1 for _ in (data_dir / "blobs").iterdir())
    client = redis.Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock"))
    records = sum(1 for _ in client.scan_iter("ots:share:*"))
    client.close()
    return blobs, records


async def run_clients(
    base_url: str, clients: int, seconds: float, size: int, password: bool
) -> Tally:
    tally = Tally()
    payload = os.urandom(size)
    deadline = time.monotonic() + seconds
    secret = "bench-password" if password else None
    await asyncio.gather(
        *(
            client_loop(base_url, payload, secret, deadline, tally, verify_every=10)
            for _ in range(clients)
        )
    )
    return tally


def benchmark(
    clients: int, seconds: float, workers: int, size: int = 4096, password: bool = False
) -> dict[str, object]:
    """Run the clients against a fresh server; a summary with the exactly-once check."""
    env = {"OTS_MIN_FREE_BYTES": "0", **HIGH_LIMITS}
    with serve(product_command(), workers=workers, env=env) as server:
        server.reset_peak_rss()
        started = time.monotonic()
        tally = asyncio.run(run_clients(server.base_url, clients, seconds, size, password))
        elapsed = time.monotonic() - started
        peak = server.peak_rss_mib()
        blobs, records = leftovers(server.data_dir)
    steps = {
        step: {
            "p50_ms": percentile(values, 0.5) * 1000,
            "p95_ms": percentile(values, 0.95) * 1000,
            "p99_ms": percentile(values, 0.99) * 1000,
            "mean_ms": statistics.fmean(values) * 1000 if values else float("nan"),
        }
        for step, values in tally.latencies.items()
    }
    return {
        "workers": workers,
        "clients": clients,
        "size": size,
        "password": password,
        "seconds": elapsed,
        "cycles_per_s": tally.cycles / elapsed,
        "requests_per_s": 3 * tally.cycles / elapsed,
        "steps": steps,
        "errors": len(tally.errors),
        "error_kinds": sorted(set(tally.errors)),
        "created": tally.created,
        "downloaded": tally.downloaded,
        "second_download_410": tally.second_download_410,
        "blobs_left": blobs,
        "records_left": records,
        "peak_rss_mib": peak,
        "exactly_once": tally.created == tally.downloaded and blobs == 0 and records == 0,
    }


def print_report(summary: dict[str, object]) -> None:
    print(
        f"workers={summary['workers']} clients={summary['clients']} size={summary['size']} B "
        f"password={'yes' if summary['password'] else 'no'} seconds={summary['seconds']:.1f}"
    )
    print(f"cycles/s {summary['cycles_per_s']:8.1f}   (upload -> landing -> download)")
    print(f"requests/s {summary['requests_per_s']:6.1f}")
    print(f"{'step':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    steps = summary["steps"]
    assert isinstance(steps, dict)
    for step, figures in steps.items():
        print(
            f"{step:>9} {figures['p50_ms']:8.1f} {figures['p95_ms']:8.1f} "
            f"{figures['p99_ms']:8.1f} {figures['mean_ms']:8.1f}"
        )
    kinds = f": {summary['error_kinds']}" if summary["errors"] else ""
    print(f"errors {summary['errors']}{kinds}")
    print(
        f"created {summary['created']}, downloaded {summary['downloaded']}, second downloads "
        f"answered 410: {summary['second_download_410']}, blobs left {summary['blobs_left']}, "
        f"records left {summary['records_left']} -> "
        f"{'exactly once: OK' if summary['exactly_once'] else 'INVARIANT BROKEN'}"
    )
    print(f"peak RSS per worker {summary['peak_rss_mib']:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument(
        "--password", action="store_true", help="protect every share (measures the Argon2id cost)"
    )
    arguments = parser.parse_args()
    print_report(
        benchmark(
            arguments.clients,
            arguments.seconds,
            arguments.workers,
            arguments.size,
            arguments.password,
        )
    )


if __name__ == "__main__":
    main()
