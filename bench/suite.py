"""Every benchmark in one run: a table of results next to their ceilings and targets, the raw
figures as JSON and a chart as SVG, in bench/results/.

    python -m bench.suite              # sizes 1M,16M,256M,1G,4G; about 10 minutes
    python -m bench.suite --quick      # sizes 1M,16M,256M; shorter load runs
"""

from __future__ import annotations

import argparse
import json
import time
from html import escape
from pathlib import Path

from bench import load, responsiveness, transfer
from bench.harness import human_size, parse_size

RESULTS = Path(__file__).resolve().parent / "results"


def check(ok: bool) -> str:
    return "met" if ok else "MISSED"


def bars_svg(
    title: str,
    labels: list[str],
    series: dict[str, list[float]],
    unit: str,
    x: int,
    y: int,
    width: int,
    height: int,
) -> str:
    """One grouped bar chart at (x, y); a handful of lines of SVG, no library."""
    colours = ["#2f6f5e", "#9fc9bc", "#3b5ba5", "#a9b9e0", "#b5651d"]
    peak = max([1.0] + [value for values in series.values() for value in values])
    group = width / max(1, len(labels))
    bar = group * 0.8 / max(1, len(series))
    parts = [f'<text x="{x}" y="{y - 8}" font-size="14" font-weight="600">{escape(title)}</text>']
    for index, label in enumerate(labels):
        left = x + index * group + group * 0.1
        for position, (name, values) in enumerate(series.items()):
            value = values[index]
            tall = value / peak * height
            parts.append(
                f'<rect x="{left + position * bar:.1f}" y="{y + height - tall:.1f}" '
                f'width="{bar * 0.9:.1f}" height="{tall:.1f}" fill="{colours[position % 5]}">'
                f"<title>{escape(name)} {escape(label)}: {value:.0f} {unit}</title></rect>"
            )
        parts.append(
            f'<text x="{left:.1f}" y="{y + height + 14}" font-size="11">{escape(label)}</text>'
        )
    for position, name in enumerate(series):
        parts.append(
            f'<rect x="{x + position * 150}" y="{y + height + 24}" width="10" '
            f'height="10" fill="{colours[position % 5]}"/>'
            f'<text x="{x + position * 150 + 14}" y="{y + height + 33}" '
            f'font-size="11">{escape(name)}</text>'
        )
    return "\n".join(parts)


def write_chart(
    path: Path, transfers: list[dict[str, float]], loads: dict[str, dict[str, object]]
) -> None:
    labels = [human_size(int(row["size"])) for row in transfers]
    transfer_chart = bars_svg(
        "Large files, MB/s (10^6 B/s)",
        labels,
        {
            "upload": [row["upload_mb_s"] for row in transfers],
            "receive ceiling": [row["receive_mb_s"] for row in transfers],
            "download": [row["download_mb_s"] for row in transfers],
            "send ceiling": [row["send_mb_s"] for row in transfers],
        },
        "MB/s",
        40,
        40,
        720,
        220,
    )
    load_chart = bars_svg(
        "Small shares, upload-landing-download cycles per second",
        list(loads),
        {"cycles/s": [float(str(summary["cycles_per_s"])) for summary in loads.values()]},
        "cycles/s",
        40,
        360,
        720,
        160,
    )
    path.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="800" height="590" '
        'font-family="system-ui, sans-serif">\n<rect width="100%" height="100%" fill="#fff"/>\n'
        f"{transfer_chart}\n{load_chart}\n</svg>\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    sizes_text = arguments.sizes or ("1M,16M,256M" if arguments.quick else "1M,16M,256M,1G,4G")
    sizes = [parse_size(size) for size in sizes_text.split(",")]
    seconds = 5.0 if arguments.quick else 10.0

    print("== large files, 1 worker")
    transfers = transfer.benchmark(sizes, arguments.repeats, workers=1)
    transfer.print_table(transfers, 1, arguments.repeats)
    loads: dict[str, dict[str, object]] = {}
    for name, workers, password in (
        ("1 worker", 1, False),
        ("2 workers", 2, False),
        ("2 workers, passwords", 2, True),
    ):
        print(f"\n== many small shares, {name}")
        loads[name] = load.benchmark(32, seconds, workers, password=password)
        load.print_report(loads[name])
    print("\n== responsiveness under load, 2 workers")
    busy = responsiveness.benchmark(min(max(sizes), parse_size("1G")), workers=2)
    for key, value in busy.items():
        print(f"  {key:24} {value:10.1f}")

    print("\n== targets")
    for row in transfers:
        if row["size"] in (parse_size("256M"), parse_size("1G")):
            print(
                f"  {human_size(int(row['size']))}: upload "
                f"{row['upload_mb_s'] / row['receive_mb_s']:.0%} of ceiling (>= 60 %: "
                f"{check(row['upload_mb_s'] >= 0.6 * row['receive_mb_s'])}), download "
                f"{row['download_mb_s'] / row['send_mb_s']:.0%} (>= 70 %: "
                f"{check(row['download_mb_s'] >= 0.7 * row['send_mb_s'])})"
            )
    worst_rss = max(
        max(row["upload_peak_rss_mib"], row["download_peak_rss_mib"]) for row in transfers
    )
    print(
        f"  peak RSS per worker over all sizes {worst_rss:.0f} MiB (< 100: "
        f"{check(worst_rss < 100)})"
    )
    two = loads["2 workers"]
    steps = two["steps"]
    assert isinstance(steps, dict)
    print(
        f"  small shares, 2 workers: {float(str(two['cycles_per_s'])):.0f} cycles/s "
        f"(>= 300: {check(float(str(two['cycles_per_s'])) >= 300)}), errors {two['errors']}, "
        f"landing p99 {steps['landing']['p99_ms']:.0f} ms (< 100: "
        f"{check(steps['landing']['p99_ms'] < 100)}), exactly once {two['exactly_once']}"
    )
    print(
        f"  under load: landing p99 {busy['landing_p99_ms']:.0f} ms (< 50: "
        f"{check(busy['landing_p99_ms'] < 50)}), worst loop stall "
        f"{busy['loop_worst_stall_ms']:.0f} ms (< 20: {check(busy['loop_worst_stall_ms'] < 20)})"
    )

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"suite-{stamp}.json").write_text(
        json.dumps({"transfers": transfers, "loads": loads, "responsiveness": busy}, indent=2)
    )
    write_chart(RESULTS / f"suite-{stamp}.svg", transfers, loads)
    print(f"\nresults: {RESULTS}/suite-{stamp}.json and .svg")


if __name__ == "__main__":
    main()
