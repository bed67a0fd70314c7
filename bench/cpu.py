"""Server CPU per small-share cycle (upload 4 KiB, landing, download, the 410 gone check):
the product next to the reference app, measured on the server side.

The CPU time (user + system) of each server's whole process tree, its Redis
included, is read from /proc before and after a batch of cycles (bench.harness
tree_cpu_seconds), so the figure is milliseconds of server CPU per cycle and does
not depend on how much CPU the load client burns. The product (``onetimeshare
serve``, its embedded Redis a child of its master) and the reference (gunicorn
4 x 2, its own embedded Redis a child of its master) run side by side; their rounds
alternate so both see the same machine, after one warm-up round each. The
figure is the median over the rounds. Each tree's idle CPU (timers, heartbeats,
the loop-lag publisher) is measured for a second first and printed beside it: it
is part of the figure, spread over the cycles of a round.

Beside them, the product's own server stack (Hypercorn, Quart, uvloop) doing no work
(bench/ceiling.py) answers the same four requests per cycle: the floor the stack
alone sets under the product's figure.

    python -m bench.cpu [--cycles 300] [--rounds 3] [--concurrency 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench.cycle import SmallShare, Tally, closed_loop, run_client
from bench.harness import (
    BROWSER,
    HIGH_LIMITS,
    Server,
    ceiling_command,
    product_command,
    reference_command,
    serve,
)
from bench.http1 import Connection


async def empty_cycles(base_url: str, cycles: int, concurrency: int, share: SmallShare) -> Tally:
    """The same four requests per cycle against the server stack doing no work
    (bench/ceiling.py): the 4 KiB multipart body received and discarded, 4 KiB sent
    from memory, two small JSON answers. What the stack alone costs per cycle."""
    tally = Tally()
    left = cycles
    steps: tuple[tuple[str, str, bytes, dict[str, str]], ...] = (
        ("POST", "/discard", share.body, share.headers),
        ("GET", "/healthz", b"", {}),
        ("GET", f"/source/{len(share.payload)}", b"", {}),
        ("GET", "/healthz", b"", {}),
    )

    async def client() -> None:
        nonlocal left
        connection = Connection(base_url, BROWSER)
        try:
            while left > 0:
                left -= 1
                for method, path, body, headers in steps:
                    answer = await connection.request(method, path, body, headers)
                    tally.statuses[answer.status] += 1
                tally.cycles += 1
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return tally


def measure(
    server: Server, cycles: int, concurrency: int, share: SmallShare, *, empty: bool = False
) -> tuple[float, Tally]:
    """Server CPU milliseconds per completed cycle over one batch, and the batch's tally."""
    client = empty_cycles if empty else closed_loop
    before = server.cpu_seconds()
    tally = run_client(lambda: client(server.base_url, cycles, concurrency, share))
    used = server.cpu_seconds() - before
    return used * 1000 / max(1, tally.cycles), tally


IDLE_SECONDS = 1.0


def idle_cpu_ms_per_s(server: Server) -> float:
    before = server.cpu_seconds()
    time.sleep(IDLE_SECONDS)
    return (server.cpu_seconds() - before) * 1000 / IDLE_SECONDS


def benchmark(cycles: int, rounds: int, concurrency: int, workers: int) -> dict[str, object]:
    env = {"OTS_MIN_FREE_BYTES": "0", **HIGH_LIMITS}
    share = SmallShare.make()
    names = ("product", "reference", "stack")
    figures: dict[str, list[float]] = {name: [] for name in names}
    errors: dict[str, dict[str, int]] = {name: {} for name in names}
    completed = dict.fromkeys(names, 0)
    with (
        serve(product_command(), workers=workers, env=env) as product,
        serve(reference_command(), workers=4, env=env) as reference,  # always 4 x 2
        serve(ceiling_command(), workers=workers, env=env) as stack,
    ):
        servers = {"product": product, "reference": reference, "stack": stack}
        for name, server in servers.items():  # warm-up: imports, template caches, pools
            measure(server, max(20, cycles // 5), concurrency, share, empty=name == "stack")
        idle = {name: idle_cpu_ms_per_s(server) for name, server in servers.items()}
        for _ in range(rounds):
            for name, server in servers.items():
                ms, tally = measure(server, cycles, concurrency, share, empty=name == "stack")
                figures[name].append(ms)
                completed[name] += tally.cycles
                for kind, count in tally.failures.items():
                    errors[name][kind] = errors[name].get(kind, 0) + count
    return {
        "cycles_per_round": cycles,
        "rounds": rounds,
        "concurrency": concurrency,
        "workers": workers,
        **{
            name: {
                "cpu_ms_per_cycle": statistics.median(values),
                "rounds_ms": values,
                "idle_cpu_ms_per_s": idle[name],
                "cycles": completed[name],
                "errors": errors[name],
            }
            for name, values in figures.items()
        },
    }


def print_report(report: dict[str, object]) -> None:
    print(
        f"server CPU per cycle (upload 4 KiB, landing, download, 410), all processes and "
        f"Redis; {report['rounds']} rounds of {report['cycles_per_round']} cycles on "
        f"{report['concurrency']} connections, median"
    )
    for name, label in (
        ("product", f"product, {report['workers']} workers"),
        ("reference", "reference, gunicorn 4x2"),
        ("stack", "server stack, no work"),
    ):
        figures = report[name]
        assert isinstance(figures, dict)
        rounds = ", ".join(f"{value:.2f}" for value in figures["rounds_ms"])
        print(
            f"  {label:26} {figures['cpu_ms_per_cycle']:6.2f} ms/cycle  (rounds {rounds}; "
            f"errors {figures['errors'] or 0}; idle {figures['idle_cpu_ms_per_s']:.0f} ms/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    arguments = parser.parse_args()
    started = time.monotonic()
    print_report(
        benchmark(arguments.cycles, arguments.rounds, arguments.concurrency, arguments.workers)
    )
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
