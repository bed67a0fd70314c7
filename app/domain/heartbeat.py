"""Keeping a lease in Redis alive while the work it stands for runs.

Upload marks, upload request slots and password checks are all leases: they lapse
on their own if the process holding them dies, so the holder renews them on a
heartbeat for as long as it is working. A renewal that fails is logged, never
raised: the worst it can do is let the lease lapse, which is what a crash does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.exceptions

log = logging.getLogger(__name__)

BEATS_PER_LEASE = 3  # renewed this many times per lifetime: two beats may be missed


def start_heartbeat(
    renew: Callable[[], Awaitable[object]], lease_seconds: float, what: str
) -> asyncio.Task[None]:
    """Renew a lease every third of its lifetime until the returned task is cancelled."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(lease_seconds / BEATS_PER_LEASE)
            try:
                await renew()
            except (redis.exceptions.RedisError, OSError):
                log.warning("could not renew %s; it lapses on its own if this keeps failing", what)

    return asyncio.create_task(beat(), name=f"heartbeat: {what}")
