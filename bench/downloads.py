"""Download (and upload) time of one file, the product next to the reference app, by size.

For 4 KiB, 1 MiB and 16 MiB (the reference caps uploads at 20 MiB): each round
uploads the file to both servers and downloads it from both with curl on
loopback, timing each. Rounds alternate the order (product first, then the
reference first), so neither always runs on a warmer or quieter machine; the
first round is a warm-up. Each figure is the median over the rounds, and the
ratio is the reference's time divided by ours (above 1: ours is faster). The
product runs with ``--workers`` (its default on this machine is 2), the
reference as always with gunicorn 4 x 2.

    python -m bench.downloads [--sizes 4K,1M,16M] [--rounds 7] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.harness import (
    HIGH_LIMITS,
    Server,
    curl,
    human_size,
    make_random_file,
    parse_size,
    product_command,
    reference_command,
    serve,
    upload_file,
)

NAMES = ("product", "reference")


def one_round(server: Server, path: Path) -> tuple[float, float, float]:
    """Upload and download ``path`` once: (upload s, download s, peak RSS of a worker MiB)."""
    server.reset_peak_rss()
    up, share = upload_file(server.base_url, path, "expires_in=3600")
    assert share["size"] == path.stat().st_size, share
    down, _ = curl("-X", "POST", "-o", "/dev/null", str(share["url"]))
    return up, down, server.peak_rss_mib()


def benchmark(sizes: list[int], rounds: int, workers: int) -> list[dict[str, float]]:
    env = {"OTS_MIN_FREE_BYTES": "0", **HIGH_LIMITS}
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="ots-bench-files-") as scratch,
        serve(product_command(), workers=workers, env=env) as product,
        serve(reference_command(), workers=4, env=env) as reference,  # always 4 x 2
    ):
        servers = {"product": product, "reference": reference}
        for size in sizes:
            path = make_random_file(Path(scratch), size)
            times: dict[str, dict[str, list[float]]] = {
                name: {"up": [], "down": [], "rss": []} for name in NAMES
            }
            for attempt in range(rounds + 1):
                order = NAMES if attempt % 2 else NAMES[::-1]
                for name in order:
                    up, down, rss = one_round(servers[name], path)
                    if attempt:  # the first round warms caches and connections
                        times[name]["up"].append(up)
                        times[name]["down"].append(down)
                        times[name]["rss"].append(rss)
            row: dict[str, float] = {"size": float(size)}
            for name in NAMES:
                row[f"{name}_upload_ms"] = statistics.median(times[name]["up"]) * 1000
                row[f"{name}_download_ms"] = statistics.median(times[name]["down"]) * 1000
                row[f"{name}_peak_rss_mib"] = max(times[name]["rss"])
            row["download_speedup"] = row["reference_download_ms"] / row["product_download_ms"]
            row["upload_speedup"] = row["reference_upload_ms"] / row["product_upload_ms"]
            rows.append(row)
    return rows


def print_table(rows: list[dict[str, float]], rounds: int, workers: int) -> None:
    print(
        f"product {workers} workers vs reference gunicorn 4x2; median of {rounds} rounds, "
        "ms; ratio = reference time / ours"
    )
    header = (
        f"{'size':>8} | {'download':>8} {'ref':>8} {'ratio':>6} | {'upload':>8} {'ref':>8} "
        f"{'ratio':>6} | {'peak RSS MiB ours/ref':>21}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{human_size(int(row['size'])):>8} | {row['product_download_ms']:8.1f} "
            f"{row['reference_download_ms']:8.1f} {row['download_speedup']:5.2f}x | "
            f"{row['product_upload_ms']:8.1f} {row['reference_upload_ms']:8.1f} "
            f"{row['upload_speedup']:5.2f}x | "
            f"{row['product_peak_rss_mib']:10.0f} / {row['reference_peak_rss_mib']:<8.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4K,1M,16M")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    arguments = parser.parse_args()
    sizes = [parse_size(size) for size in arguments.sizes.split(",")]
    print_table(
        benchmark(sizes, arguments.rounds, arguments.workers), arguments.rounds, arguments.workers
    )


if __name__ == "__main__":
    main()
