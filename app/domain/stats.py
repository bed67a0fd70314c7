"""What the admin dashboard reads: counters, hourly series, the event feed, the live-share
index and the system's health. Written by the share lifecycle's Lua scripts (metadata.py);
read here with SCAN-free lookups on maintained keys, never KEYS."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

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
EXPIRY_INDEX = "ots:active:expiry"
SIZE_INDEX = "ots:active:size"
INFO_INDEX = "ots:active:info"
EVENTS = "ots:events"
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
class SystemState:
    redis_ok: bool
    redis_memory: str
    store_kind: str
    free_bytes: int | None
    blobs_on_disk: int
    live_shares: int
    janitor: dict[str, str]
    version: str

    @property
    def mismatch(self) -> bool:
        return self.blobs_on_disk != self.live_shares


def _int(value: bytes | None) -> int:
    return int(value) if value else 0


async def read_counters(redis: Redis, metadata: MetadataStore) -> Counters:
    # Shares whose TTL ran out are recorded as expired before they are counted.
    await metadata.sweep_expired()
    now = time.time()
    minute = int(now // 60)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall("ots:stats")
        pipe.zcount(EXPIRY_INDEX, now, "+inf")
        for offset in range(60):
            pipe.hmget(f"ots:stats:minute:{minute - offset}", list(COUNTERS))
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


async def hourly_series(redis: Redis, hours: int = 24) -> list[HourBucket]:
    """Uploads and downloads per hour, oldest first, the current hour last."""
    current = int(time.time() // 3600)
    starts = [current - offset for offset in range(hours - 1, -1, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for hour in starts:
            pipe.hmget(f"ots:stats:hour:{hour}", ["uploads", "downloads"])
        rows = await pipe.execute()
    return [
        HourBucket(hour * 3600.0, _int(row[0]), _int(row[1]))
        for hour, row in zip(starts, rows, strict=True)
    ]


async def recent_events(redis: Redis, count: int = 20) -> list[Event]:
    """The newest events first."""
    entries = cast(list[StreamEntry], await redis.xrevrange(EVENTS, count=count))
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


async def latest_event_id(redis: Redis) -> str:
    entries = cast(list[StreamEntry], await redis.xrevrange(EVENTS, count=1))
    return entries[0][0].decode() if entries else "0-0"


async def wait_for_event(redis: Redis, after: str, block_ms: int) -> str | None:
    """Block until an event newer than ``after`` arrives; its id, or None on timeout."""
    answer = cast(
        list[tuple[bytes, list[StreamEntry]]],
        await redis.xread({EVENTS: after}, count=1, block=block_ms),
    )
    if not answer:
        return None
    return answer[0][1][-1][0].decode()


async def active_shares(redis: Redis, *, sort: SortKey, page: int, per_page: int) -> SharePage:
    """One page of live shares, soonest expiry (or largest) first. Never names or keys."""
    index = EXPIRY_INDEX if sort == "expiry" else SIZE_INDEX
    start = (page - 1) * per_page
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(index)
        if sort == "expiry":
            pipe.zrange(index, start, start + per_page - 1)
        else:
            pipe.zrevrange(index, start, start + per_page - 1)
        total, ids = await pipe.execute()
    share_ids = [raw.decode() for raw in ids]
    if not share_ids:
        return SharePage([], int(total), page, per_page, sort)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(INFO_INDEX, share_ids)
        for share_id in share_ids:
            pipe.zscore(EXPIRY_INDEX, share_id)
            pipe.zscore(SIZE_INDEX, share_id)
            pipe.hget(MetadataStore.share_key(share_id), "tries")
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


async def system_state(redis: Redis, blobs: BlobStore, version: str) -> SystemState:
    try:
        memory = await redis.info("memory")
        live = int(await redis.zcard(EXPIRY_INDEX))
        janitor_raw = cast(dict[bytes, bytes], await redis.hgetall("ots:janitor:last"))
        redis_ok = True
    except (RedisError, OSError):
        memory, live, janitor_raw, redis_ok = {}, 0, {}, False
    facts = await blobs.facts()
    return SystemState(
        redis_ok=redis_ok,
        redis_memory=str(memory.get("used_memory_human", "unknown")),
        store_kind=facts.kind,
        free_bytes=facts.free_bytes,
        blobs_on_disk=facts.blobs,
        live_shares=live,
        janitor={key.decode(): value.decode() for key, value in janitor_raw.items()},
        version=version,
    )
