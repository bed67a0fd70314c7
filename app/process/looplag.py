"""Event-loop lag, measured inside each worker: how late a short sleep wakes up.

Anything that blocks the loop (a synchronous call, a big copy, a GIL-hungry
thread) shows up as lag, and lag is latency for every request the worker is
holding. Each worker publishes its figures to Redis every second, so the
benchmarks and the dashboard can read them across workers (keys.py: ``ots:looplag:<pid>``,
and ``ots:looplag``, the pids that published, which the dashboard reads instead of
scanning the keyspace).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field

import redis.exceptions
from redis.asyncio import Redis

from ..domain import keys

log = logging.getLogger(__name__)

INTERVAL = 0.01  # sample every 10 ms
PUBLISH_EVERY = 1.0

# KEYS: the worker's figures, the index of workers. ARGV: pid, seconds kept, field, value, ...
# The figures and the worker's index entry are written together, on Redis's clock, and
# entries of workers silent for longer than their figures live are dropped from the index.
_PUBLISH = """
local now = tonumber(redis.call('TIME')[1])
local kept = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], kept)
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - kept)
redis.call('EXPIRE', KEYS[2], kept)
return 1
"""


@dataclass
class LoopLag:
    worst_ms: float = 0.0
    window_worst_ms: float = 0.0  # since the last publication: for benchmark windows
    samples: int = 0
    over_20ms: int = 0
    recent_ms: list[float] = field(default_factory=list)

    def record(self, lag_ms: float) -> None:
        self.samples += 1
        self.worst_ms = max(self.worst_ms, lag_ms)
        self.window_worst_ms = max(self.window_worst_ms, lag_ms)
        if lag_ms > 20:
            self.over_20ms += 1
        self.recent_ms.append(lag_ms)
        if len(self.recent_ms) > 1000:
            del self.recent_ms[:500]

    def p99_ms(self) -> float:
        if not self.recent_ms:
            return 0.0
        ordered = sorted(self.recent_ms)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def monitor(client: Redis, lag: LoopLag, stopping: asyncio.Event) -> None:
    """Sample the loop's lateness until stopped; publish worst, p99 and count over 20 ms."""
    pid = os.getpid()
    figures_key = keys.loop_lag(pid)
    publish = client.register_script(_PUBLISH)
    published = time.monotonic()
    while not stopping.is_set():
        before = time.perf_counter()
        await asyncio.sleep(INTERVAL)
        lag.record(max(0.0, (time.perf_counter() - before - INTERVAL) * 1000))
        now = time.monotonic()
        if now - published >= PUBLISH_EVERY:
            published = now
            figures: dict[str, str | int] = {
                "worst_ms": f"{lag.worst_ms:.2f}",
                "window_worst_ms": f"{lag.window_worst_ms:.2f}",
                "p99_ms": f"{lag.p99_ms():.2f}",
                "samples": lag.samples,
                "over_20ms": lag.over_20ms,
            }
            fields = [item for pair in figures.items() for item in pair]
            try:
                await publish(
                    keys=[figures_key, keys.LOOP_LAG_WORKERS],
                    args=[pid, keys.LOOP_LAG_SECONDS, *fields],
                )
                lag.window_worst_ms = 0.0
            except (redis.exceptions.RedisError, OSError):
                log.debug("could not publish loop lag")
