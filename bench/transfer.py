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


def measure(product: Server, ceiling: Server, path: Path, repeats: int) -> dict[str, float]:
    """One size: product and ceiling alternate within every round, so both see the same
    machine (this VM's throughput drifts by tens of percent over minutes)."""
    size = path.stat().st_size
    figures: dict[str, list[float]] = {name: [] for name in ("up", "down", "receive", "send")}
    rss_up, rss_down = [], []
    for attempt in range(repeats + 1):
        product.reset_peak_rss()
        seconds, share = upload_file(product.base_url, path)
        rss_up.append(product.peak_rss_mib())
        assert share["size"] == size, share
        receive_seconds, _ = curl("-F", f"file=@{path}", f"{ceiling.base_url}/discard")
        product.reset_peak_rss()
        download_seconds, _ = curl("-X", "POST", "-o", "/dev/null", str(share["url"]))
        rss_down.append(product.peak_rss_mib())
        send_seconds, _ = curl("-o", "/dev/null", f"{ceiling.base_url}/source/{size}")
        if attempt:  # the first round warms memory and caches
            figures["up"].append(mb_per_s(size, seconds))
            figures["receive"].append(mb_per_s(size, receive_seconds))
            figures["down"].append(mb_per_s(size, download_seconds))
            figures["send"].append(mb_per_s(size, send_seconds))
    return {
        "upload_mb_s": statistics.median(figures["up"]),
        "download_mb_s": statistics.median(figures["down"]),
        "receive_mb_s": statistics.median(figures["receive"]),
        "send_mb_s": statistics.median(figures["send"]),
        "upload_peak_rss_mib": max(rss_up),
        "download_peak_rss_mib": max(rss_down),
    }


def benchmark(sizes: list[int], repeats: int, workers: int) -> list[dict[str, float]]:
    """Each size through the product and the ceiling server, rounds interleaved."""
    env = {"OTS_MAX_UPLOAD_BYTES": str(max(sizes)), "OTS_MIN_FREE_BYTES": "0", **HIGH_LIMITS}
    with tempfile.TemporaryDirectory(prefix="ots-bench-files-") as scratch:
        files = [make_random_file(Path(scratch), size) for size in sizes]
        with (
            serve(ceiling_command(), workers=workers, env=env) as ceiling,
            serve(product_command(), workers=workers, env=env) as product,
        ):
            return [
                {"size": path.stat().st_size, **measure(product, ceiling, path, repeats)}
                for path in files
            ]


def print_table(rows: list[dict[str, float]], workers: int, repeats: int) -> None:
    print(f"workers={workers} repeats={repeats} (median MB/s, 10^6 B/s)")
    header = (
        f"{'size':>8} | {'upload':>7} {'ceiling':>7} {'ratio':>6} | {'download':>8} "
        f"{'ceiling':>7} {'ratio':>6} | {'peak RSS up/down MiB':>20}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{human_size(int(row['size'])):>8} | {row['upload_mb_s']:7.0f} "
            f"{row['receive_mb_s']:7.0f} {row['upload_mb_s'] / row['receive_mb_s']:6.0%} | "
            f"{row['download_mb_s']:8.0f} {row['send_mb_s']:7.0f} "
            f"{row['download_mb_s'] / row['send_mb_s']:6.0%} | "
            f"{row['upload_peak_rss_mib']:9.0f} / {row['download_peak_rss_mib']:<8.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256M,1G")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args()
    sizes = [parse_size(size) for size in arguments.sizes.split(",")]
    rows = benchmark(sizes, arguments.repeats, arguments.workers)
    print_table(rows, arguments.workers, arguments.repeats)
    RESULTS.mkdir(exist_ok=True)
    output = RESULTS / f"transfer-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.write_text(json.dumps({"workers": arguments.workers, "rows": rows}, indent=2))
    print(f"raw results: {output}")


if __name__ == "__main__":
    main()
