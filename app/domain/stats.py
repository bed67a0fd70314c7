"""What the admin dashboard and /metrics read: counters, hourly series, the event feed, the
live-share index, each worker's event-loop lag and the system's health.

Written by the share lifecycle's Lua scripts (metadata.py) and by each worker's loop-lag
monitor (process/looplag.py), under the keys keys.py names; read here with SCAN-free
lookups on maintained keys, never KEYS. One ``StatsReader`` is built with the services.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import keys
from .metadata import MetadataStore
from .storage import BlobStore

COUNTERS = (
    "uploads",
    "downloads",
    "failed_passwords",
    "destroyed",
    "expired",
    "revoked",
    "lost",
    "rate_limited",
    "cli_blocked",
)
SortKey = Literal["expiry", "size"]
StreamEntry = tuple[bytes, dict[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Counters:
    totals: dict[str, int]
    last_hour: dict[str, int]
    active_shares: int
    bytes_stored: int


@dataclass(frozen=True, slots=True)
class HourBucket:
    start: float
    uploads: int
    downloads: int


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    at: float
    kind: str
    share: str
    size: int
    share_kind: str


@dataclass(frozen=True, slots=True)
class ActiveShare:
    share_id: str
    kind: str
    size: int
    protected: bool
    created_at: float
    expires_at: float
    tries: int

    @property
    def short_id(self) -> str:
        return self.share_id[:8]


@dataclass(frozen=True, slots=True)
class SharePage:
    shares: list[ActiveShare]
    total: int
    page: int
    per_page: int
    sort: SortKey

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True, slots=True)
class WorkerLag:
    """One worker's event-loop lag since it started, as it last published it."""

    pid: int
    worst_ms: float
    p99_ms: float
    over_20ms: int


@dataclass(frozen=True, slots=True)
class SystemState:
    redis_ok: bool
    redis_memory: str
    store_kind: str
    free_bytes: int | None
    blobs_on_disk: int
    live_shares: int
    janitor: dict[str, str]
    version: str
    loop_lag: list[WorkerLag]

    @property
    def mismatch(self) -> bool:
        return self.blobs_on_disk != self.live_shares


def _int(value: bytes | None) -> int:
    return int(value) if value else 0


class StatsReader:
    """Reads the statistics; holds the Redis client, the metadata (to sweep expired shares
    before counting) and the blob store (for the system panel)."""

    def __init__(
        self, redis: Redis, metadata: MetadataStore, blobs: BlobStore, version: str
    ) -> None:
        self._redis = redis
        self._metadata = metadata
        self._blobs = blobs
        self._version = version

    async def counters(self) -> Counters:
        # Shares whose TTL ran out are recorded as expired before they are counted.
        await self._metadata.sweep_expired()
        now = time.time()
        minute = int(now // 60)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.STATS)
            pipe.zcount(keys.ACTIVE_EXPIRY, now, "+inf")
            for offset in range(60):
                pipe.hmget(keys.stats_minute(minute - offset), list(COUNTERS))
            results = await pipe.execute()
        totals_raw = cast(dict[bytes, bytes], results[0])
        totals = {name: _int(totals_raw.get(name.encode())) for name in COUNTERS}
        last_hour = dict.fromkeys(COUNTERS, 0)
        for bucket in results[2:]:
            for name, value in zip(COUNTERS, bucket, strict=True):
                last_hour[name] += _int(value)
        return Counters(
            totals, last_hour, int(results[1]), max(0, _int(totals_raw.get(b"bytes_stored")))
        )

    async def hourly_series(self, hours: int = 24) -> list[HourBucket]:
        """Uploads and downloads per hour, oldest first, the current hour last."""
        current = int(time.time() // 3600)
        starts = [current - offset for offset in range(hours - 1, -1, -1)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for hour in starts:
                pipe.hmget(keys.stats_hour(hour), ["uploads", "downloads"])
            rows = await pipe.execute()
        return [
            HourBucket(hour * 3600.0, _int(row[0]), _int(row[1]))
            for hour, row in zip(starts, rows, strict=True)
        ]

    async def recent_events(self, count: int = 20) -> list[Event]:
        """The newest events first."""
        entries = cast(list[StreamEntry], await self._redis.xrevrange(keys.EVENTS, count=count))
        events = []
        for raw_id, fields in entries:
            event_id = raw_id.decode()
            events.append(
                Event(
                    event_id=event_id,
                    at=int(event_id.split("-")[0]) / 1000,
                    kind=fields.get(b"type", b"").decode(),
                    share=fields.get(b"id", b"").decode(),
                    size=_int(fields.get(b"size")),
                    share_kind=fields.get(b"kind", b"").decode(),
                )
            )
        return events

    async def latest_event_id(self) -> str:
        entries = cast(list[StreamEntry], await self._redis.xrevrange(keys.EVENTS, count=1))
        return entries[0][0].decode() if entries else "0-0"

    async def wait_for_event(self, after: str, block_ms: int) -> str | None:
        """Block until an event newer than ``after`` arrives; its id, or None on timeout."""
        answer = cast(
            list[tuple[bytes, list[StreamEntry]]],
            await self._redis.xread({keys.EVENTS: after}, count=1, block=block_ms),
        )
        if not answer:
            return None
        return answer[0][1][-1][0].decode()

    async def active_shares(self, *, sort: SortKey, page: int, per_page: int) -> SharePage:
        """One page of live shares, soonest expiry (or largest) first. Never names or keys."""
        index = keys.ACTIVE_EXPIRY if sort == "expiry" else keys.ACTIVE_SIZE
        start = (page - 1) * per_page
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(index)
            if sort == "expiry":
                pipe.zrange(index, start, start + per_page - 1)
            else:
                pipe.zrevrange(index, start, start + per_page - 1)
            total, ids = await pipe.execute()
        share_ids = [raw.decode() for raw in ids]
        if not share_ids:
            return SharePage([], int(total), page, per_page, sort)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.ACTIVE_INFO, share_ids)
            for share_id in share_ids:
                pipe.zscore(keys.ACTIVE_EXPIRY, share_id)
                pipe.zscore(keys.ACTIVE_SIZE, share_id)
                pipe.hget(keys.share(share_id), "tries")
            results = await pipe.execute()
        infos = results[0]
        shares = []
        for position, share_id in enumerate(share_ids):
            expires, size, tries = results[1 + 3 * position : 4 + 3 * position]
            kind, protected, created = (infos[position] or b"file|0|0").decode().split("|")
            shares.append(
                ActiveShare(
                    share_id,
                    kind,
                    int(size or 0),
                    protected == "1",
                    float(created),
                    float(expires or 0),
                    _int(tries),
                )
            )
        return SharePage(shares, int(total), page, per_page, sort)

    async def loop_lag(self) -> list[WorkerLag]:
        """The figures of every worker that published lately, by pid; a worker that
        stopped drops out once its figures expire."""
        members = cast(list[bytes], await self._redis.zrange(keys.LOOP_LAG_WORKERS, 0, -1))
        pids = sorted(int(member) for member in members)
        async with self._redis.pipeline(transaction=False) as pipe:
            for pid in pids:
                pipe.hgetall(keys.loop_lag(pid))
            published = cast(list[dict[bytes, bytes]], await pipe.execute())
        return [
            WorkerLag(
                pid,
                float(fields.get(b"worst_ms", b"0")),
                float(fields.get(b"p99_ms", b"0")),
                _int(fields.get(b"over_20ms")),
            )
            for pid, fields in zip(pids, published, strict=True)
            if fields
        ]

    async def system_state(self) -> SystemState:
        try:
            memory = await self._redis.info("memory")
            live = int(await self._redis.zcard(keys.ACTIVE_EXPIRY))
            janitor_raw = cast(dict[bytes, bytes], await self._redis.hgetall(keys.JANITOR_LAST))
            loop_lag = await self.loop_lag()
            redis_ok = True
        except (RedisError, OSError):
            memory, live, janitor_raw, loop_lag, redis_ok = {}, 0, {}, [], False
        facts = await self._blobs.facts()
        return SystemState(
            redis_ok=redis_ok,
            redis_memory=str(memory.get("used_memory_human", "unknown")),
            store_kind=facts.kind,
            free_bytes=facts.free_bytes,
            blobs_on_disk=facts.blobs,
            live_shares=live,
            janitor={key.decode(): value.decode() for key, value in janitor_raw.items()},
            version=self._version,
            loop_lag=loop_lag,
        )
