"""Prometheus metrics: per-process request figures, plus service-wide figures from Redis.

Workers are separate processes, so prometheus-client runs in multiprocess mode
when ``onetimeshare serve`` sets PROMETHEUS_MULTIPROC_DIR (one directory per run,
emptied at start); one scrape then sums every worker of this instance. The
``ots_service_*`` figures come from the Redis statistics the whole service
shares, so every instance reports the same values: aggregate them with max(),
not sum().
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("ots_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "ots_request_duration_seconds",
    "Time to the start of the answer",
    ["route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TRANSFERRED = Counter(
    "ots_transfer_bytes_total", "File and message bytes stored or served", ["direction"]
)
PASSWORD_CHECKS = Counter(
    "ots_password_checks_total",
    "Share passwords evaluated with Argon2id, by outcome (right or wrong)",
    ["outcome"],
)
for _outcome in ("right", "wrong"):
    PASSWORD_CHECKS.labels(_outcome)  # exported as 0 before the first check
JANITOR_RUNS = Counter("ots_janitor_runs_total", "Janitor passes completed")


def prepare_multiprocess_dir(directory: Path) -> None:
    """Called by the serving process before the workers start (they inherit the variable)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(directory)


def forget_dead_worker(pid: int) -> None:
    """Called by the master when a worker has died. Only live gauges of that pid go;
    its counter and histogram files stay and keep being summed, so a crash loses no
    requests already counted."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def process_metrics() -> bytes:
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(PROCESS_REGISTRY)


def service_metrics(totals: dict[str, int], active: int, bytes_stored: int) -> bytes:
    """Service-wide figures in the Prometheus text format."""
    lines = [
        "# HELP ots_service_active_shares Live shares in the whole service",
        "# TYPE ots_service_active_shares gauge",
        f"ots_service_active_shares {active}",
        "# HELP ots_service_stored_bytes Bytes of live shares in the whole service",
        "# TYPE ots_service_stored_bytes gauge",
        f"ots_service_stored_bytes {bytes_stored}",
        "# HELP ots_service_events_total Share lifecycle and gateway events, service-wide",
        "# TYPE ots_service_events_total counter",
    ]
    lines += [
        f'ots_service_events_total{{event="{name}"}} {value}'
        for name, value in sorted(totals.items())
    ]
    return ("\n".join(lines) + "\n").encode()
