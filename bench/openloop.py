"""Small shares at a fixed arrival rate (open loop): latency per step, 503s and other errors.

A closed loop (bench/load.py) measures how long the queue is at saturation; here
cycles (upload 4 KiB, landing, download, the 410 gone check) start at a fixed
rate whatever the server does, one every 1/rate seconds, so a slow answer does
not slow the offered load and the latencies measure service time at that load.
Each arrival takes an idle keep-alive connection from a pool, or opens one if all
are busy (up to ``--max-connections``; an arrival finding none is counted as
dropped). Connections idle for over a second are closed, so none is reused just
as the server's keep-alive timeout closes it (gunicorn's is 2 s).

The client is the lean HTTP/1.1 client of bench/http1.py on uvloop, so that it is
not the bottleneck on a shared 2-core machine; how late it started arrivals is
reported (``client_late_p99_ms``), and so is the server tree's CPU per cycle over
the run. The product runs with ``--workers`` workers, the reference (gunicorn
4 x 2) at the same rate, one after the other.

    python -m bench.openloop [--rate 150] [--seconds 10] [--workers 2] [--no-reference]
"""

from __future__ import annotations

import argparse
import asyncio

from bench.cycle import STEPS, SmallShare, Tally, run_client, run_cycle
from bench.harness import (
    BROWSER,
    HIGH_LIMITS,
    Server,
    percentile,
    product_command,
    reference_command,
    serve,
)
from bench.http1 import Connection

IDLE_CLOSE_SECONDS = 1.0
DRAIN_SECONDS = 30.0


async def offer(
    base_url: str, rate: float, seconds: float, share: SmallShare, max_connections: int
) -> dict[str, object]:
    """Start ``rate * seconds`` cycles at fixed times; wait for them; return the figures."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    idle: list[tuple[Connection, float]] = []
    busy = 0
    opened = 0
    dropped = 0
    late: list[float] = []
    durations: list[float] = []
    running: set[asyncio.Task[None]] = set()

    async def cycle(connection: Connection, scheduled: float) -> None:
        nonlocal busy
        try:
            if await run_cycle(connection, share, tally):
                durations.append(loop.time() - scheduled)
                idle.append((connection, loop.time()))
        finally:
            busy -= 1

    arrivals = round(rate * seconds)
    start = loop.time() + 0.1
    for index in range(arrivals):
        scheduled = start + index / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        late.append(max(0.0, loop.time() - scheduled))
        now = loop.time()
        while idle and now - idle[0][1] > IDLE_CLOSE_SECONDS:
            await idle.pop(0)[0].close()
        if idle:
            connection = idle.pop()[0]  # the most recently used: surely still open
        elif busy < max_connections:
            connection = Connection(base_url, BROWSER)
            opened += 1
        else:
            dropped += 1
            continue
        busy += 1
        task = loop.create_task(cycle(connection, scheduled))
        running.add(task)
        task.add_done_callback(running.discard)
    offered_for = loop.time() - start
    unfinished = 0
    if running:
        _, pending = await asyncio.wait(set(running), timeout=DRAIN_SECONDS)
        unfinished = len(pending)
        for task in pending:
            task.cancel()
    for connection, _ in idle:
        await connection.close()
    return {
        "rate": rate,
        "seconds": offered_for,
        "arrivals": arrivals,
        "completed": tally.cycles,
        "dropped": dropped,
        "unfinished": unfinished,
        "connections_opened": opened,
        "status_503": tally.statuses[503],
        "errors": tally.errors,
        "error_kinds": dict(tally.failures),
        "steps": tally.step_summary(),
        "cycle_p50_ms": percentile(durations, 0.5) * 1000,
        "cycle_p99_ms": percentile(durations, 0.99) * 1000,
        "client_late_p99_ms": percentile(late, 0.99) * 1000,
        "client_late_max_ms": max(late, default=0.0) * 1000,
    }


def measure(server: Server, rate: float, seconds: float, max_connections: int) -> dict[str, object]:
    share = SmallShare.make()
    # A short warm-up at a tenth of the rate: imports, template caches, connection pools.
    run_client(lambda: offer(server.base_url, rate / 10, 1.0, share, max_connections))
    before = server.cpu_seconds()
    report = run_client(lambda: offer(server.base_url, rate, seconds, share, max_connections))
    used = server.cpu_seconds() - before
    completed = report["completed"]
    assert isinstance(completed, int)
    report["cpu_ms_per_cycle"] = used * 1000 / max(1, completed)
    report["server_cpu_cores"] = used / float(str(report["seconds"]))
    return report


def benchmark(
    rate: float, seconds: float, workers: int, reference: bool = True, max_connections: int = 512
) -> dict[str, dict[str, object]]:
    env = {"OTS_MIN_FREE_BYTES": "0", **HIGH_LIMITS}
    results = {}
    with serve(product_command(), workers=workers, env=env) as product:
        results["product"] = measure(product, rate, seconds, max_connections)
        results["product"]["workers"] = workers
    if reference:
        with serve(reference_command(), workers=4, env=env) as server:  # always 4 x 2
            results["reference"] = measure(server, rate, seconds, max_connections)
    return results


def print_report(results: dict[str, dict[str, object]]) -> None:
    for name, report in results.items():
        label = (
            f"product, {report['workers']} workers"
            if name == "product"
            else "reference, gunicorn 4x2"
        )
        print(
            f"{label}: {report['rate']:g} cycles/s offered for {float(str(report['seconds'])):.1f}"
            f" s: {report['completed']}/{report['arrivals']} cycles completed, "
            f"503s {report['status_503']}, errors {report['errors']}"
            f"{' ' + str(report['error_kinds']) if report['errors'] else ''}, dropped "
            f"{report['dropped']}, unfinished "
            f"{report['unfinished']}, {report['connections_opened']} connections"
        )
        steps = report["steps"]
        assert isinstance(steps, dict)
        print(f"  {'step':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for step in STEPS:
            figures = steps[step]
            print(
                f"  {step:>9} {figures['p50_ms']:8.1f} {figures['p99_ms']:8.1f} "
                f"{figures['max_ms']:8.1f}"
            )
        print(
            f"  {'cycle':>9} {float(str(report['cycle_p50_ms'])):8.1f} "
            f"{float(str(report['cycle_p99_ms'])):8.1f}   (from its scheduled start)"
        )
        print(
            f"  server CPU {float(str(report['cpu_ms_per_cycle'])):.2f} ms/cycle, "
            f"{float(str(report['server_cpu_cores'])):.2f} cores; client late p99 "
            f"{float(str(report['client_late_p99_ms'])):.1f} ms, max "
            f"{float(str(report['client_late_max_ms'])):.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=150.0, help="cycles started per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-connections", type=int, default=512)
    parser.add_argument("--no-reference", action="store_true")
    arguments = parser.parse_args()
    print_report(
        benchmark(
            arguments.rate,
            arguments.seconds,
            arguments.workers,
            not arguments.no_reference,
            arguments.max_connections,
        )
    )


if __name__ == "__main__":
    main()
