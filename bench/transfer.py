"""Large-file throughput and memory: the real server next to a ceiling measured in the same run.

For each size it uploads a random file through ``POST /upload`` and downloads
it through ``POST /d/<token>`` with curl on loopback, and reports MB/s
(10^6 bytes/s) each way with the server's peak RSS. The ceilings are the same
Quart + Hypercorn stack receiving and discarding a body of that size, and
sending one from memory (bench/ceiling.py). Each figure is the median of
``--repeats`` runs after one warm-up run (the first touch of fresh memory is
slow on this VM and would otherwise count against whichever runs first).

    python -m bench.transfer [--sizes 256M,1G] [--repeats 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.harness import (
    HIGH_LIMITS,
    Server,
    ceiling_command,
    curl,
    human_size,
    make_random_file,
    parse_size,
    product_command,
    serve,
    upload_file,
)

RESULTS = Path(__file__).resolve().parent / "results"


def mb_per_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def measure_product(server: Server, path: Path, repeats: int) -> dict[str, float]:
    size = path.stat().st_size
    up, down, rss_up, rss_down = [], [], [], []
    for attempt in range(repeats + 1):
        server.reset_peak_rss()
        seconds, share = upload_file(server.base_url, path)
        rss_up.append(server.peak_rss_mib())
        assert share["size"] == size, share
        server.reset_peak_rss()
        download_seconds, _ = curl("-X", "POST", "-o", "/dev/null", str(share["url"]))
        rss_down.append(server.peak_rss_mib())
        if attempt:  # the first round warms memory and caches
            up.append(mb_per_s(size, seconds))
            down.append(mb_per_s(size, download_seconds))
    return {
        "upload_mb_s": statistics.median(up),
        "download_mb_s": statistics.median(down),
        "upload_peak_rss_mib": max(rss_up),
        "download_peak_rss_mib": max(rss_down),
    }


def measure_ceiling(server: Server, path: Path, repeats: int) -> dict[str, float]:
    size = path.stat().st_size
    up, down = [], []
    for attempt in range(repeats + 1):
        seconds, _ = curl("-F", f"file=@{path}", f"{server.base_url}/discard")
        download_seconds, _ = curl("-o", "/dev/null", f"{server.base_url}/source/{size}")
        if attempt:
            up.append(mb_per_s(size, seconds))
            down.append(mb_per_s(size, download_seconds))
    return {"receive_mb_s": statistics.median(up), "send_mb_s": statistics.median(down)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256M,1G")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args()
    sizes = [parse_size(size) for size in arguments.sizes.split(",")]
    env = {"OTS_MAX_UPLOAD_BYTES": str(max(sizes)), "OTS_MIN_FREE_BYTES": "0", **HIGH_LIMITS}

    rows = []
    with tempfile.TemporaryDirectory(prefix="ots-bench-files-") as scratch:
        files = [make_random_file(Path(scratch), size) for size in sizes]
        with serve(ceiling_command(), workers=arguments.workers, env=env) as ceiling:
            ceilings = [measure_ceiling(ceiling, path, arguments.repeats) for path in files]
        with serve(product_command(), workers=arguments.workers, env=env) as product:
            measured = [measure_product(product, path, arguments.repeats) for path in files]
    for size, limit, result in zip(sizes, ceilings, measured, strict=True):
        rows.append({"size": size, **limit, **result})

    print(f"workers={arguments.workers} repeats={arguments.repeats} (median MB/s, 10^6 B/s)")
    header = (
        f"{'size':>8} | {'upload':>7} {'ceiling':>7} {'ratio':>6} | {'download':>8} "
        f"{'ceiling':>7} {'ratio':>6} | {'peak RSS up/down MiB':>20}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{human_size(row['size']):>8} | {row['upload_mb_s']:7.0f} {row['receive_mb_s']:7.0f} "
            f"{row['upload_mb_s'] / row['receive_mb_s']:6.0%} | {row['download_mb_s']:8.0f} "
            f"{row['send_mb_s']:7.0f} {row['download_mb_s'] / row['send_mb_s']:6.0%} | "
            f"{row['upload_peak_rss_mib']:9.0f} / {row['download_peak_rss_mib']:<8.0f}"
        )
    RESULTS.mkdir(exist_ok=True)
    output = RESULTS / f"transfer-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.write_text(json.dumps({"workers": arguments.workers, "rows": rows}, indent=2))
    print(f"raw results: {output}")


if __name__ == "__main__":
    main()
