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

from bench.harness import BROWSER, HIGH_LIMITS, product_command, serve
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


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def leftovers(data_dir: Path) -> tuple[int, int]:
    blobs = sum(1 for _ in (data_dir / "blobs").iterdir())
    client = redis.Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock"))
    records = sum(1 for _ in client.scan_iter("ots:share:*"))
    client.close()
    return blobs, records


async def run(arguments: argparse.Namespace, base_url: str) -> Tally:
    tally = Tally()
    payload = os.urandom(arguments.size)
    deadline = time.monotonic() + arguments.seconds
    password = "bench-password" if arguments.password else None
    await asyncio.gather(
        *(
            client_loop(base_url, payload, password, deadline, tally, verify_every=10)
            for _ in range(arguments.clients)
        )
    )
    return tally


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
    env = {"OTS_MIN_FREE_BYTES": "0", **HIGH_LIMITS}
    with serve(product_command(), workers=arguments.workers, env=env) as server:
        server.reset_peak_rss()
        started = time.monotonic()
        tally = asyncio.run(run(arguments, server.base_url))
        elapsed = time.monotonic() - started
        peak = server.peak_rss_mib()
        blobs, records = leftovers(server.data_dir)

    print(
        f"workers={arguments.workers} clients={arguments.clients} size={arguments.size} B "
        f"password={'yes' if arguments.password else 'no'} seconds={elapsed:.1f}"
    )
    print(f"cycles/s {tally.cycles / elapsed:8.1f}   (upload -> landing -> download)")
    print(f"requests/s {3 * tally.cycles / elapsed:6.1f}")
    print(f"{'step':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for step, values in tally.latencies.items():
        mean = statistics.fmean(values) * 1000 if values else float("nan")
        print(
            f"{step:>9} {percentile(values, 0.5):8.1f} {percentile(values, 0.95):8.1f} "
            f"{percentile(values, 0.99):8.1f} {mean:8.1f}"
        )
    kinds = f": {sorted(set(tally.errors))}" if tally.errors else ""
    print(f"errors {len(tally.errors)}{kinds}")
    exactly_once = tally.created == tally.downloaded and blobs == 0 and records == 0
    print(
        f"created {tally.created}, downloaded {tally.downloaded}, second downloads answered "
        f"410: {tally.second_download_410}, blobs left {blobs}, records left {records} -> "
        f"{'exactly once: OK' if exactly_once else 'INVARIANT BROKEN'}"
    )
    print(f"peak RSS per worker {peak:.0f} MiB")


if __name__ == "__main__":
    main()
