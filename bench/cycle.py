"""The small-share cycle of issue 14: upload 4 KiB, open the landing page, download, and check
that a second download is refused with 410. Four requests, sent with the lean client
(bench/http1.py) to the product or the reference alike: both answer the same requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.harness import BROWSER, percentile
from bench.http1 import Connection, multipart

STEPS = ("upload", "landing", "download", "gone")
EXPECTED = {"upload": 201, "landing": 200, "download": 200, "gone": 410}
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}

T = TypeVar("T")


@dataclass(frozen=True)
class SmallShare:
    """What every cycle uploads: one random payload, its multipart body made once."""

    payload: bytes
    body: bytes
    headers: dict[str, str]

    @classmethod
    def make(cls, size: int = 4096) -> SmallShare:
        payload = os.urandom(size)
        body, content_type = multipart({"expires_in": "3600"}, "small.bin", payload)
        return cls(payload, body, {"Content-Type": content_type, "Accept": "application/json"})


@dataclass
class Tally:
    """Latencies per step (seconds) of the requests that were answered as expected, and why
    the other cycles failed (``"upload 503"``, ``"download body"``, an exception's name)."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    cycles: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(self.failures.values())

    def step_summary(self) -> dict[str, dict[str, float]]:
        return {
            step: {
                "count": float(len(values)),
                "p50_ms": percentile(values, 0.5) * 1000,
                "p99_ms": percentile(values, 0.99) * 1000,
                "max_ms": max(values, default=float("nan")) * 1000,
            }
            for step, values in self.latencies.items()
        }


async def run_cycle(connection: Connection, share: SmallShare, tally: Tally) -> bool:
    """One cycle on ``connection``; False if it failed (then the connection is closed)."""
    try:
        return await _cycle(connection, share, tally)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
        tally.failures[type(error).__name__] += 1
        await connection.close()
        return False


async def _cycle(connection: Connection, share: SmallShare, tally: Tally) -> bool:
    async def step(name: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
        started = time.perf_counter()
        answer = await connection.request(method, path, body, headers)
        elapsed = time.perf_counter() - started
        tally.statuses[answer.status] += 1
        if answer.status != EXPECTED[name]:
            tally.failures[f"{name} {answer.status}"] += 1
            return None
        tally.latencies[name].append(elapsed)
        return answer

    created = await step("upload", "POST", "/upload", share.body, share.headers)
    if created is None:
        return False
    path = "/d/" + json.loads(created.body)["url"].rsplit("/d/", 1)[1]
    if await step("landing", "GET", path, b"", {}) is None:
        return False
    download = await step("download", "POST", path, b"", FORM_HEADERS)
    if download is None:
        return False
    if download.body != share.payload:
        tally.failures["download body"] += 1
        return False
    if await step("gone", "POST", path, b"", FORM_HEADERS) is None:
        return False
    tally.cycles += 1
    return True


async def closed_loop(base_url: str, cycles: int, concurrency: int, share: SmallShare) -> Tally:
    """``cycles`` cycles on ``concurrency`` keep-alive connections, as fast as they go."""
    tally = Tally()
    left = cycles

    async def client() -> None:
        nonlocal left
        connection = Connection(base_url, BROWSER)
        try:
            while left > 0:
                left -= 1
                await run_cycle(connection, share, tally)
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return tally


def run_client(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a load client, on uvloop when it is installed: the client shares the server's
    two cores, so the cheaper it is, the less it takes from what is measured."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())
