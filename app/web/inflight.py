"""Upload requests in flight per client: a small number of leases in Redis, shared by all workers.

A request that sends an upload body holds a connection, a worker's buffers and
often a ``.part`` file for as long as it lasts, so each client may have only
``OTS_UPLOADS_PER_CLIENT`` of them in flight at once. This is about requests,
not uploads: a resumable upload paused between requests holds no slot (its
lifetime is its own expiry); each of its requests takes one while it runs.

Keys (named in domain/keys.py): ``ots:inflight:upload:<client key>``, a sorted set
of lease ids scored by when each lapses (milliseconds, Redis's clock). A request
refreshes its lease every third of ``OTS_UPLOAD_SLOT_SECONDS`` and removes it when it
ends however it ends; a worker killed outright stops refreshing, so its leases lapse
within that time and are dropped by the next acquisition. The key expires with its
newest lease. The client key is a keyed hash (web/clients.py), not an address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import redis.exceptions
from redis.asyncio import Redis

from ..domain import keys
from ..domain.heartbeat import start_heartbeat

log = logging.getLogger(__name__)

# KEYS: the client's set. ARGV: lease id, lease milliseconds, slots per client.
# Returns 1 if the lease was taken, 0 if every slot is held.
_ACQUIRE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease_ms = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + lease_ms, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease_ms)
return 1
"""

# KEYS: the client's set. ARGV: lease id, lease milliseconds. A lease already dropped
# (Redis unreachable for longer than its lifetime) is not taken back: its slot may
# have gone to another request meanwhile. One that lapsed but is still listed was
# counted by nobody since, so it may simply go on.
_REFRESH = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease_ms = tonumber(ARGV[2])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + lease_ms, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease_ms)
return 1
"""


class UploadRequestSlots:
    """Leases on the upload requests a client may have in flight."""

    def __init__(self, redis: Redis, per_client: int, lease_seconds: float) -> None:
        self.per_client = per_client
        self.lease_seconds = lease_seconds
        self._redis = redis
        self._acquire: Any = redis.register_script(_ACQUIRE)
        self._refresh: Any = redis.register_script(_REFRESH)

    @contextlib.asynccontextmanager
    async def hold(self, client_key: str) -> AsyncIterator[bool]:
        """Hold a slot while the block runs; yields False (holding nothing) if all are taken."""
        lease = await self.take(client_key)
        if lease is None:
            yield False
            return
        heartbeat = start_heartbeat(
            lambda: self.refresh(client_key, lease), self.lease_seconds, "an upload slot"
        )
        try:
            yield True
        finally:
            heartbeat.cancel()
            # Shielded: a cancelled request (client gone, server stopping) still frees its slot.
            await asyncio.shield(self.release(client_key, lease))

    async def take(self, client_key: str) -> str | None:
        """A new lease, lapsing after ``lease_seconds`` unless refreshed; None if all are taken."""
        lease = secrets.token_hex(8)
        taken = await self._acquire(
            keys=[keys.upload_slots(client_key)], args=[lease, self._lease_ms, self.per_client]
        )
        return lease if int(taken) else None

    async def refresh(self, client_key: str, lease: str) -> bool:
        """Extend a lease; False if it was already dropped."""
        return bool(
            await self._refresh(keys=[keys.upload_slots(client_key)], args=[lease, self._lease_ms])
        )

    async def release(self, client_key: str, lease: str) -> None:
        try:
            await self._redis.zrem(keys.upload_slots(client_key), lease)
        except (redis.exceptions.RedisError, OSError):
            log.warning("could not release an upload slot; it lapses on its own")

    @property
    def _lease_ms(self) -> int:
        return int(self.lease_seconds * 1000)
