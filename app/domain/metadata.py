"""Share metadata in Redis: the record with its TTL, the one-time claim, tries and tombstones.

The keys and what each holds are listed in keys.py, which names every key; the record's
fields and their bounds are here (``ShareRecord``), with the Lua scripts that change a
share's state. Every state change that must be exactly-once runs as one Lua script.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal, cast

from redis.asyncio import Redis

from ..errors import GoneReason
from . import keys
from .crypto import Argon2Params

ShareKind = Literal["file", "text"]
SHARE_KINDS: frozenset[str] = frozenset({"file", "text"})
RECORD_VERSION = 2
# Absolute bounds a record read back from Redis must be within (the settings are
# validated against the same ones); anything else is treated as a lost share.
MAX_SHARE_BYTES = 1024**4  # 1 TiB
MAX_TEXT_SHARE_BYTES = 16 * 1024 * 1024
MAX_PASSWORD_TRIES = 1000
MAX_SEALED_ENVELOPE_BYTES = 16 * 1024
SALT_BYTES = 16
_REVOKE_ID = re.compile(rb"[0-9a-f]{32}")

# Statistics and the index of live shares are kept by the same scripts that change
# a share's state, so they can never disagree with it. Their key names, and those of the
# records a script finds by itself, come from keys.LUA (why not KEYS: see keys.py).
_BOOKKEEPING = (
    keys.LUA
    + """
local function bump(counter, amount)
  local now = tonumber(redis.call('TIME')[1])
  redis.call('HINCRBY', STATS, counter, amount)
  local minute = STATS_MINUTE .. math.floor(now / 60)
  redis.call('HINCRBY', minute, counter, amount)
  redis.call('EXPIRE', minute, MINUTE_BUCKET_SECONDS)
  local hour = STATS_HOUR .. math.floor(now / 3600)
  redis.call('HINCRBY', hour, counter, amount)
  redis.call('EXPIRE', hour, HOUR_BUCKET_SECONDS)
end
local function event(kind, id, size, share_kind)
  redis.call('XADD', EVENTS, 'MAXLEN', '~', EVENTS_KEPT, '*',
             'type', kind, 'id', string.sub(id, 1, 8), 'size', size, 'kind', share_kind)
end
-- Deletes the record (and its checks in flight) and leaves a tombstone saying why; the
-- revoke pointer then lives as long as the tombstone, so the revoke page can say what
-- happened. False if the share had already ended.
local function end_share(id, reason, tombstone_seconds)
  local share_key = SHARE .. id
  local rid = redis.call('HGET', share_key, 'rid')
  if redis.call('DEL', share_key) == 0 then return false end
  redis.call('DEL', CHECKS .. id)
  redis.call('SET', GONE .. id, reason, 'EX', tombstone_seconds)
  if rid then redis.call('EXPIRE', REVOKE .. rid, tombstone_seconds) end
  return true
end
local function retire(id, counter, kind)
  local size = tonumber(redis.call('ZSCORE', ACTIVE_SIZE, id) or '0')
  local info = redis.call('HGET', ACTIVE_INFO, id) or 'file'
  local share_kind = string.match(info, '^[^|]*')
  redis.call('ZREM', ACTIVE_EXPIRY, id)
  redis.call('ZREM', ACTIVE_SIZE, id)
  redis.call('HDEL', ACTIVE_INFO, id)
  redis.call('HINCRBY', STATS, 'bytes_stored', string.format('%d', 0 - size))
  bump(counter, 1)
  event(kind, id, size, share_kind)
end
"""
)

# KEYS: share, gone, upload mark, revoke pointer.
# ARGV: ttl, tombstone seconds, share id, size, expires at, index info, field, value, ...
_CREATE = (
    _BOOKKEEPING
    + """
local ttl = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('SET', KEYS[2], 'expired', 'EX', ttl + tonumber(ARGV[2]))
redis.call('DEL', KEYS[3])
redis.call('SET', KEYS[4], ARGV[3], 'EX', ttl)
redis.call('ZADD', ACTIVE_EXPIRY, ARGV[5], ARGV[3])
redis.call('ZADD', ACTIVE_SIZE, ARGV[4], ARGV[3])
redis.call('HSET', ACTIVE_INFO, ARGV[3], ARGV[6])
redis.call('HINCRBY', STATS, 'bytes_stored', ARGV[4])
bump('uploads', 1)
event('uploaded', ARGV[3], ARGV[4], string.match(ARGV[6], '^[^|]*'))
return 1
"""
)

# Deleting the record is the claim: DEL is atomic, so of any number of
# concurrent claims exactly one sees 1. Every way a share ends goes through here.
# ARGV: share id, reason, tombstone seconds, counter, event.
_CLAIM = (
    _BOOKKEEPING
    + """
if not end_share(ARGV[1], ARGV[2], ARGV[3]) then return 0 end
retire(ARGV[1], ARGV[4], ARGV[5])
return 1
"""
)

# Reserves a password check before Argon2 runs. Returns the tries left after this one
# if it were wrong (> 0), -1 when the share is gone, -2 when the checks in flight
# already use up the tries left (the caller answers 429 and the guess is never
# evaluated), -3 when this call found the share spent and destroyed it.
# ARGV: share id, max tries, lease id, lease milliseconds, tombstone seconds.
_RESERVE_CHECK = (
    _BOOKKEEPING
    + """
local id = ARGV[1]
local share_key = SHARE .. id
if redis.call('EXISTS', share_key) == 0 then return -1 end
local checks = CHECKS .. id
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', checks, '-inf', now)
local in_flight = redis.call('ZCARD', checks)
local limit = tonumber(ARGV[2])
local tries = tonumber(redis.call('HGET', share_key, 'tries')) or 0
if tries >= limit then
  -- Only after the limit was lowered below the tries this share already had: spent.
  end_share(id, 'destroyed', ARGV[5])
  retire(id, 'destroyed', 'destroyed')
  return -3
end
if tries + in_flight >= limit then return -2 end
redis.call('ZADD', checks, now + tonumber(ARGV[4]), ARGV[3])
redis.call('PEXPIRE', checks, ARGV[4])
return limit - tries - in_flight
"""
)

# A check still running renews its lease. One already dropped (lapsed and swept) is
# not taken back: its try may have gone to another guess meanwhile.
# ARGV: share id, lease id, lease milliseconds.
_RENEW_CHECK = (
    keys.LUA
    + """
local checks = CHECKS .. ARGV[1]
if not redis.call('ZSCORE', checks, ARGV[2]) then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', checks, now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', checks, ARGV[3])
return 1
"""
)

# A reserved check found the password wrong: the lease becomes a counted try. Returns
# tries left, 0 when this failure destroyed the share, -1 when it was already gone.
# Counted as a failed password either way: it was evaluated.
# ARGV: share id, max tries, tombstone seconds, lease id.
_SETTLE_WRONG = (
    _BOOKKEEPING
    + """
local id = ARGV[1]
redis.call('ZREM', CHECKS .. id, ARGV[4])
bump('failed_passwords', 1)
local share_key = SHARE .. id
if redis.call('EXISTS', share_key) == 0 then return -1 end
local tries = redis.call('HINCRBY', share_key, 'tries', 1)
local left = tonumber(ARGV[2]) - tries
if left > 0 then return left end
end_share(id, 'destroyed', ARGV[3])
retire(id, 'destroyed', 'destroyed')
return 0
"""
)

# A reserved check is over without a wrong guess (the password was right, or the check
# was abandoned): the lease goes back. Returns whether the share still exists, which is
# what a right password may be answered with.
# ARGV: share id, lease id.
_RELEASE_CHECK = (
    keys.LUA
    + """
redis.call('ZREM', CHECKS .. ARGV[1], ARGV[2])
return redis.call('EXISTS', SHARE .. ARGV[1])
"""
)

# Records as expired the indexed shares whose TTL ran out. Returns how many.
_SWEEP_EXPIRED = (
    _BOOKKEEPING
    + """
local now = tonumber(redis.call('TIME')[1])
local due = redis.call('ZRANGEBYSCORE', ACTIVE_EXPIRY, '-inf', now, 'LIMIT', 0, 500)
local swept = 0
for _, id in ipairs(due) do
  if redis.call('EXISTS', SHARE .. id) == 0 then
    retire(id, 'expired', 'expired')
    swept = swept + 1
  end
end
return swept
"""
)

# ARGV: counter, event type (or empty for none).
_COUNT = (
    _BOOKKEEPING
    + """
bump(ARGV[1], 1)
if ARGV[2] ~= '' then event(ARGV[2], '', 0, '') end
return 1
"""
)

# What each way of ending a share counts as, and the event it shows in the feed.
_ENDINGS: dict[str, tuple[str, str]] = {
    "downloaded": ("downloads", "downloaded"),
    "revoked": ("revoked", "revoked"),
    "lost": ("lost", "lost"),
}


# reserved: a lease to evaluate one guess; gone: the share has ended; busy: the checks
# in flight would use up the tries left; spent: the share had no tries left (the limit
# was lowered) and this reservation destroyed it.
CheckOutcome = Literal["reserved", "gone", "busy", "spent"]
_CHECK_REFUSALS: dict[int, CheckOutcome] = {-1: "gone", -2: "busy", -3: "spent"}


@dataclass(frozen=True, slots=True)
class CheckReservation:
    """The outcome of ``reserve_check``: a lease to evaluate one guess, or why not."""

    share_id: str
    lease: str | None
    outcome: CheckOutcome

    @property
    def reserved(self) -> bool:
        return self.lease is not None


_RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class CorruptRecord(ValueError):
    """A share record in Redis that does not parse or is out of bounds (rewritten or damaged)."""


@dataclass(frozen=True, slots=True)
class ShareRecord:
    share_id: str
    kind: ShareKind
    size: int
    created_at: float
    expires_at: float
    sealed_envelope: bytes
    salt: bytes | None = None
    argon2: Argon2Params | None = None
    tries: int = 0
    revoke_id: str = ""

    @property
    def protected(self) -> bool:
        return self.salt is not None

    def to_redis(self) -> dict[str, str | bytes | int | float]:
        fields: dict[str, str | bytes | int | float] = {
            "v": RECORD_VERSION,
            "kind": self.kind,
            "size": self.size,
            "created": self.created_at,
            "expires": self.expires_at,
            "sealed": self.sealed_envelope,
            "tries": self.tries,
            "rid": self.revoke_id,
        }
        if self.salt is not None and self.argon2 is not None:
            fields |= {
                "salt": self.salt,
                "a2t": self.argon2.time_cost,
                "a2m": self.argon2.memory_kib,
                "a2p": self.argon2.parallelism,
            }
        return fields

    @classmethod
    def from_redis(cls, share_id: str, fields: dict[bytes, bytes]) -> ShareRecord:
        """Parse a record defensively: anything malformed or out of bounds is ``CorruptRecord``.

        Bounds are absolute, not today's settings, so a record cannot make one request
        cost more than any configuration could, and changed settings never reject a
        share made under the old ones.
        """
        try:
            version = int(fields.get(b"v", b"1"))
            kind = fields[b"kind"].decode("ascii")
            size = int(fields[b"size"])
            created_at = float(fields[b"created"])
            expires_at = float(fields[b"expires"])
            sealed = fields[b"sealed"]
            salt = fields.get(b"salt")
            argon2 = None
            if salt is not None:
                argon2 = Argon2Params(
                    time_cost=int(fields[b"a2t"]),
                    memory_kib=int(fields[b"a2m"]),
                    parallelism=int(fields[b"a2p"]),
                )
            tries = int(fields.get(b"tries", b"0"))
            revoke_id = fields.get(b"rid", b"")
        except (KeyError, ValueError, UnicodeDecodeError) as error:
            raise CorruptRecord(f"unreadable field: {type(error).__name__}") from None
        problems = [
            what
            for what, bad in (
                ("version", version not in (1, RECORD_VERSION)),
                ("kind", kind not in SHARE_KINDS),
                ("size", not 0 <= size <= MAX_SHARE_BYTES),
                ("text size", kind == "text" and size > MAX_TEXT_SHARE_BYTES),
                ("times", not (math.isfinite(created_at) and math.isfinite(expires_at))),
                ("envelope", not 0 < len(sealed) <= MAX_SEALED_ENVELOPE_BYTES),
                ("salt", salt is not None and len(salt) != SALT_BYTES),
                ("argon2", argon2 is not None and not argon2.within_bounds),
                ("tries", not 0 <= tries <= MAX_PASSWORD_TRIES),
                ("revoke id", bool(revoke_id) and not _REVOKE_ID.fullmatch(revoke_id)),
            )
            if bad
        ]
        if problems:
            raise CorruptRecord("out of bounds: " + ", ".join(problems))
        return cls(
            share_id=share_id,
            kind=cast(ShareKind, kind),
            size=size,
            created_at=created_at,
            expires_at=expires_at,
            sealed_envelope=sealed,
            salt=salt,
            argon2=argon2,
            tries=tries,
            revoke_id=revoke_id.decode("ascii"),
        )


class MetadataStore:
    def __init__(self, redis: Redis, tombstone_seconds: int) -> None:
        self.redis = redis
        self.tombstone_seconds = tombstone_seconds
        self._create = redis.register_script(_CREATE)
        self._claim = redis.register_script(_CLAIM)
        self._reserve_check = redis.register_script(_RESERVE_CHECK)
        self._renew_check = redis.register_script(_RENEW_CHECK)
        self._settle_wrong = redis.register_script(_SETTLE_WRONG)
        self._release_check = redis.register_script(_RELEASE_CHECK)
        self._sweep_expired = redis.register_script(_SWEEP_EXPIRED)
        self._count = redis.register_script(_COUNT)
        self._renew_lock = redis.register_script(_RENEW_LOCK)
        self._release_lock = redis.register_script(_RELEASE_LOCK)

    # For callers that name keys through the store; keys.py owns the names.
    share_key = staticmethod(keys.share)
    gone_key = staticmethod(keys.gone)
    upload_key = staticmethod(keys.upload)
    revoke_key = staticmethod(keys.revoke)
    ticket_key = staticmethod(keys.ticket)
    progress_key = staticmethod(keys.progress)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # --- uploads in progress ---

    async def mark_uploading(self, share_id: str, ttl_seconds: int) -> None:
        await self.redis.set(keys.upload(share_id), b"1", ex=ttl_seconds)

    async def clear_uploading(self, share_id: str) -> None:
        await self.redis.delete(keys.upload(share_id))

    # --- the share record ---

    async def create(self, record: ShareRecord) -> None:
        """Store the record, its expiry, tombstone, revoke capability and index entry, and
        end the upload mark, in one script."""
        ttl = max(1, round(record.expires_at - time.time()))
        share_id = record.share_id
        info = f"{record.kind}|{int(record.protected)}|{record.created_at:.0f}"
        fields = [item for pair in record.to_redis().items() for item in pair]
        await self._create(
            keys=[
                keys.share(share_id),
                keys.gone(share_id),
                keys.upload(share_id),
                keys.revoke(record.revoke_id),
            ],
            args=[
                ttl,
                self.tombstone_seconds,
                share_id,
                record.size,
                record.expires_at,
                info,
                *fields,
            ],
        )

    async def get(self, share_id: str) -> ShareRecord | None:
        """The live record, None when there is none; ``CorruptRecord`` when unreadable."""
        fields = cast(dict[bytes, bytes], await self.redis.hgetall(keys.share(share_id)))
        if not fields:
            return None
        return ShareRecord.from_redis(share_id, fields)

    async def get_or_gone(self, share_id: str) -> tuple[ShareRecord | None, GoneReason]:
        """The live record, or None and why it is gone, in one round trip: a gone link
        is answered as often as a live one (every reload of a used link)."""
        pipeline = self.redis.pipeline(transaction=False)
        pipeline.hgetall(keys.share(share_id))
        pipeline.get(keys.gone(share_id))
        fields, reason = cast(tuple[dict[bytes, bytes], bytes | None], await pipeline.execute())
        if fields:
            return ShareRecord.from_redis(share_id, fields), "unknown"
        return None, "unknown" if reason is None else cast(GoneReason, reason.decode())

    async def revoke_target(self, revoke_id: str) -> str | None:
        share_id = cast(bytes | None, await self.redis.get(keys.revoke(revoke_id)))
        return None if share_id is None else share_id.decode()

    async def gone_reason(self, share_id: str) -> GoneReason:
        reason = cast(bytes | None, await self.redis.get(keys.gone(share_id)))
        if reason is None:
            return "unknown"
        return cast(GoneReason, reason.decode())

    async def claim(self, share_id: str, reason: GoneReason = "downloaded") -> bool:
        """End the share (downloaded, revoked or lost); True for exactly one caller."""
        counter, event = _ENDINGS[reason]
        args: list[str | int] = [share_id, reason, self.tombstone_seconds, counter, event]
        return bool(await self._claim(keys=[], args=args))

    # --- password checks in flight ---

    async def reserve_check(
        self, share_id: str, max_tries: int, lease_seconds: float
    ) -> CheckReservation:
        """Reserve the right to evaluate one password guess, before Argon2 runs."""
        lease = secrets.token_hex(8)
        args: list[str | int] = [
            share_id,
            max_tries,
            lease,
            max(1, int(lease_seconds * 1000)),
            self.tombstone_seconds,
        ]
        answer = int(await self._reserve_check(keys=[], args=args))
        if answer > 0:
            return CheckReservation(share_id, lease, "reserved")
        return CheckReservation(share_id, None, _CHECK_REFUSALS[answer])

    async def renew_check(self, check: CheckReservation, lease_seconds: float) -> bool:
        """Extend a check's lease while its hash runs; False if it was already dropped."""
        assert check.lease is not None
        args: list[str | int] = [check.share_id, check.lease, max(1, int(lease_seconds * 1000))]
        return bool(await self._renew_check(keys=[], args=args))

    async def settle_wrong(self, check: CheckReservation, max_tries: int) -> int:
        """Count an evaluated wrong guess: tries left, 0 if it destroyed the share, -1 if gone."""
        assert check.lease is not None
        args: list[str | int] = [check.share_id, max_tries, self.tombstone_seconds, check.lease]
        return int(await self._settle_wrong(keys=[], args=args))

    async def release_check(self, check: CheckReservation) -> bool:
        """Give the reserved try back; True if the share still exists at that moment."""
        assert check.lease is not None
        return bool(await self._release_check(keys=[], args=[check.share_id, check.lease]))

    # --- tickets (the unlock proof) ---

    async def store_ticket(
        self, purpose: str, ticket_id: str, share_id: str, sealed: bytes, ttl_seconds: int
    ) -> None:
        value = share_id.encode("ascii") + sealed
        await self.redis.set(keys.ticket(purpose, ticket_id), value, ex=ttl_seconds)

    async def take_ticket(self, purpose: str, ticket_id: str) -> tuple[str, bytes] | None:
        """The share id and sealed payload of a ticket, which is deleted in the same step."""
        value = cast(bytes | None, await self.redis.getdel(keys.ticket(purpose, ticket_id)))
        if value is None or len(value) <= 32:
            return None
        return value[:32].decode("ascii", errors="replace"), value[32:]

    async def sweep_expired(self) -> int:
        """Count and unindex shares whose TTL ran out (Redis deletes them silently)."""
        return int(await self._sweep_expired(keys=[], args=[]))

    async def count(self, counter: str, event: str = "") -> None:
        """Count something that is not a share's state change (a rate limit, a block)."""
        await self._count(keys=[], args=[counter, event])

    # --- upload progress, for the progress fragment ---

    async def set_progress(
        self, upload_id: str, fields: dict[str, str | int | float], ttl_seconds: int
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.progress(upload_id), mapping=fields)  # type: ignore[arg-type]
            pipe.expire(keys.progress(upload_id), ttl_seconds)
            await pipe.execute()

    async def get_progress(self, upload_id: str) -> dict[str, str]:
        fields = cast(dict[bytes, bytes], await self.redis.hgetall(keys.progress(upload_id)))
        return {key.decode(): value.decode() for key, value in fields.items()}

    # --- janitor support ---

    async def referenced(self, share_ids: list[str]) -> set[str]:
        """Which of these ids have a live record or an upload in progress.

        One EXISTS over both keys per id, so a record written just as its
        upload mark is removed is never seen as neither.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            for share_id in share_ids:
                pipe.exists(keys.share(share_id), keys.upload(share_id))
            counts = await pipe.execute()
        return {share_id for share_id, count in zip(share_ids, counts, strict=True) if count}

    async def acquire_lock(self, name: str, ttl_seconds: float) -> str | None:
        owner = secrets.token_hex(16)
        acquired = await self.redis.set(
            keys.lock(name), owner, nx=True, px=max(1, int(ttl_seconds * 1000))
        )
        return owner if acquired else None

    async def renew_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Extend a lock this owner still holds; False if it lapsed or changed hands."""
        args: list[str | int] = [owner, max(1, int(ttl_seconds * 1000))]
        return bool(await self._renew_lock(keys=[keys.lock(name)], args=args))

    async def release_lock(self, name: str, owner: str) -> None:
        await self._release_lock(keys=[keys.lock(name)], args=[owner])

    async def record_janitor_run(self, summary: dict[str, int | float]) -> None:
        await self.redis.hset(keys.JANITOR_LAST, mapping=summary)  # type: ignore[arg-type]
