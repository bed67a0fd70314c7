"""Large-file throughput and memory: the real server next to two ceilings measured in the same run.

For each size it uploads a random file through ``POST /upload`` and downloads
it through ``POST /d/<token>`` with curl on loopback, and reports MB/s
(10^6 bytes/s) each way with the server's peak RSS per worker. Two ceilings
receive and discard a body of that size and send one from memory: the
product's own Quart + Hypercorn stack doing no work (bench/ceiling.py), and a
bare asyncio socket server (bench/bare_ceiling.py), so that a change of server
cannot flatter the ratio. Each figure is the median of ``--repeats`` runs after
one warm-up run (the first touch of fresh memory is slow on this VM and would
otherwise count against whichever runs first). Sizes above 1 GiB are there for
the peak RSS and run once, without the warm-up.

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
    bare_ceiling_command,
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
# Larger files are measured once (their point is the flat peak RSS), for the suite's time.
ONCE_ABOVE = 1024**3


def mb_per_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


FIGURES = ("up", "down", "receive", "send", "bare_receive", "bare_send")


def measure(
    product: Server, ceiling: Server, bare: Server, path: Path, repeats: int
) -> dict[str, float]:
    """One size: product and ceilings alternate within every round, so all see the same
    machine (this VM's throughput drifts by tens of percent over minutes)."""
    size = path.stat().st_size
    figures: dict[str, list[float]] = {name: [] for name in FIGURES}
    rss_up, rss_down = [], []
    once = size > ONCE_ABOVE
    for attempt in range(1 if once else repeats + 1):
        product.reset_peak_rss()
        seconds, share = upload_file(product.base_url, path)
        rss_up.append(product.peak_rss_mib())
        assert share["size"] == size, share
        receive_seconds, _ = curl("-F", f"file=@{path}", f"{ceiling.base_url}/discard")
        bare_receive_seconds, _ = curl("-F", f"file=@{path}", f"{bare.base_url}/discard")
        product.reset_peak_rss()
        download_seconds, _ = curl("-X", "POST", "-o", "/dev/null", str(share["url"]))
        rss_down.append(product.peak_rss_mib())
        send_seconds, _ = curl("-o", "/dev/null", f"{ceiling.base_url}/source/{size}")
        bare_send_seconds, _ = curl("-o", "/dev/null", f"{bare.base_url}/source/{size}")
        if attempt or once:  # the first round warms memory and caches
            figures["up"].append(mb_per_s(size, seconds))
            figures["receive"].append(mb_per_s(size, receive_seconds))
            figures["bare_receive"].append(mb_per_s(size, bare_receive_seconds))
            figures["down"].append(mb_per_s(size, download_seconds))
            figures["send"].append(mb_per_s(size, send_seconds))
            figures["bare_send"].append(mb_per_s(size, bare_send_seconds))
    return {
        "upload_mb_s": statistics.median(figures["up"]),
        "download_mb_s": statistics.median(figures["down"]),
        "receive_mb_s": statistics.median(figures["receive"]),
        "send_mb_s": statistics.median(figures["send"]),
        "bare_receive_mb_s": statistics.median(figures["bare_receive"]),
        "bare_send_mb_s": statistics.median(figures["bare_send"]),
        "rounds": float(len(figures["up"])),
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
            serve(bare_ceiling_command(), workers=1, env=env) as bare,
            serve(product_command(), workers=workers, env=env) as product,
        ):
            return [
                {"size": path.stat().st_size, **measure(product, ceiling, bare, path, repeats)}
                for path in files
            ]


def print_table(rows: list[dict[str, float]], workers: int, repeats: int) -> None:
    print(
        f"workers={workers} repeats={repeats} (median MB/s, 10^6 B/s; ceilings: the default "
        "stack doing no work / a bare asyncio socket, and our share of each)"
    )
    header = (
        f"{'size':>8} | {'upload':>7} {'ceiling':>7} {'bare':>6} {'ratios':>9} | "
        f"{'download':>8} {'ceiling':>7} {'bare':>6} {'ratios':>9} | {'peak RSS up/down MiB':>20}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        up, down = row["upload_mb_s"], row["download_mb_s"]
        print(
            f"{human_size(int(row['size'])):>8} | {up:7.0f} {row['receive_mb_s']:7.0f} "
            f"{row['bare_receive_mb_s']:6.0f} {up / row['receive_mb_s']:4.0%}/"
            f"{up / row['bare_receive_mb_s']:<4.0%} | {down:8.0f} {row['send_mb_s']:7.0f} "
            f"{row['bare_send_mb_s']:6.0f} {down / row['send_mb_s']:4.0%}/"
            f"{down / row['bare_send_mb_s']:<4.0%} | "
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
