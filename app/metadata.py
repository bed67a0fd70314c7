"""Share metadata in Redis: the record with its TTL, the one-time claim, tries and tombstones.

Keys (``<id>`` is the share id derived from the token, never the token):

* ``ots:share:<id>``  hash, TTL = the share's expiry. Holds the sealed envelope;
  deleting it is what makes the share unrecoverable (crypto-shredding).
* ``ots:gone:<id>``   why a share no longer works ("expired" until something else
  happens), kept ``tombstone_seconds`` past the expiry so the link can say why.
* ``ots:upload:<id>`` present while an upload streams; the janitor leaves the
  ``.part``/``.blob`` of such an id alone.
* ``ots:revoke:<rid>`` the share id a revoke link may destroy; ``<rid>`` is derived
  from the uploader's separate revoke token. It lives as long as the share, then as
  long as its tombstone, so the revoke page can say what became of the share.
* ``ots:progress:<upload id>`` bytes received and the phase of an upload, for the
  progress fragment; no secrets.
* ``ots:janitor:lock`` one janitor at a time across workers and instances.

Every state change that must be exactly-once runs as one Lua script.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from .crypto import Argon2Params
from .errors import GoneReason

PREFIX = "ots:"

# Statistics and the index of live shares are kept by the same scripts that change
# a share's state, so they can never disagree with it. These keys are not declared
# in KEYS: the service runs on a single Redis, not a Redis Cluster.
_BOOKKEEPING = """
local function bump(counter, amount)
  local now = tonumber(redis.call('TIME')[1])
  redis.call('HINCRBY', 'ots:stats', counter, amount)
  local minute = 'ots:stats:minute:' .. math.floor(now / 60)
  redis.call('HINCRBY', minute, counter, amount)
  redis.call('EXPIRE', minute, 7260)
  local hour = 'ots:stats:hour:' .. math.floor(now / 3600)
  redis.call('HINCRBY', hour, counter, amount)
  redis.call('EXPIRE', hour, 90000)
end
local function event(kind, id, size, share_kind)
  redis.call('XADD', 'ots:events', 'MAXLEN', '~', '1000', '*',
             'type', kind, 'id', string.sub(id, 1, 8), 'size', size, 'kind', share_kind)
end
-- Deletes the record and leaves a tombstone saying why; the revoke pointer then
-- lives as long as the tombstone, so the revoke page can say what happened.
local function end_share(share_key, gone_key, reason, tombstone_seconds)
  local rid = redis.call('HGET', share_key, 'rid')
  if redis.call('DEL', share_key) == 0 then return false end
  redis.call('SET', gone_key, reason, 'EX', tombstone_seconds)
  if rid then redis.call('EXPIRE', 'ots:revoke:' .. rid, tombstone_seconds) end
  return true
end
local function retire(id, counter, kind)
  local size = tonumber(redis.call('ZSCORE', 'ots:active:size', id) or '0')
  local info = redis.call('HGET', 'ots:active:info', id) or 'file'
  local share_kind = string.match(info, '^[^|]*')
  redis.call('ZREM', 'ots:active:expiry', id)
  redis.call('ZREM', 'ots:active:size', id)
  redis.call('HDEL', 'ots:active:info', id)
  redis.call('HINCRBY', 'ots:stats', 'bytes_stored', string.format('%d', 0 - size))
  bump(counter, 1)
  event(kind, id, size, share_kind)
end
"""

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
redis.call('ZADD', 'ots:active:expiry', ARGV[5], ARGV[3])
redis.call('ZADD', 'ots:active:size', ARGV[4], ARGV[3])
redis.call('HSET', 'ots:active:info', ARGV[3], ARGV[6])
redis.call('HINCRBY', 'ots:stats', 'bytes_stored', ARGV[4])
bump('uploads', 1)
event('uploaded', ARGV[3], ARGV[4], string.match(ARGV[6], '^[^|]*'))
return 1
"""
)

# Deleting the record is the claim: DEL is atomic, so of any number of
# concurrent claims exactly one sees 1.
# KEYS: share, gone. ARGV: reason, tombstone seconds, share id, counter, event.
_CLAIM = (
    _BOOKKEEPING
    + """
if not end_share(KEYS[1], KEYS[2], ARGV[1], ARGV[2]) then return 0 end
retire(ARGV[3], ARGV[4], ARGV[5])
return 1
"""
)

# Returns tries left, 0 when this failure destroyed the share, -1 when it was already gone.
# KEYS: share, gone. ARGV: max tries, tombstone seconds, share id.
_FAIL_ATTEMPT = (
    _BOOKKEEPING
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
bump('failed_passwords', 1)
local left = tonumber(ARGV[1]) - tries
if left > 0 then return left end
end_share(KEYS[1], KEYS[2], 'destroyed', ARGV[2])
retire(ARGV[3], 'destroyed', 'destroyed')
return 0
"""
)

# Records as expired the indexed shares whose TTL ran out. Returns how many.
_SWEEP_EXPIRED = (
    _BOOKKEEPING
    + """
local now = tonumber(redis.call('TIME')[1])
local due = redis.call('ZRANGEBYSCORE', 'ots:active:expiry', '-inf', now, 'LIMIT', 0, 500)
local swept = 0
for _, id in ipairs(due) do
  if redis.call('EXISTS', 'ots:share:' .. id) == 0 then
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
}

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class ShareRecord:
    share_id: str
    kind: str
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
            "v": 1,
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
        salt = fields.get(b"salt")
        argon2 = None
        if salt is not None:
            argon2 = Argon2Params(
                time_cost=int(fields[b"a2t"]),
                memory_kib=int(fields[b"a2m"]),
                parallelism=int(fields[b"a2p"]),
            )
        return cls(
            share_id=share_id,
            kind=fields[b"kind"].decode(),
            size=int(fields[b"size"]),
            created_at=float(fields[b"created"]),
            expires_at=float(fields[b"expires"]),
            sealed_envelope=fields[b"sealed"],
            salt=salt,
            argon2=argon2,
            tries=int(fields.get(b"tries", b"0")),
            revoke_id=fields.get(b"rid", b"").decode(),
        )


class MetadataStore:
    def __init__(self, redis: Redis, tombstone_seconds: int) -> None:
        self.redis = redis
        self.tombstone_seconds = tombstone_seconds
        self._create = redis.register_script(_CREATE)
        self._claim = redis.register_script(_CLAIM)
        self._fail_attempt = redis.register_script(_FAIL_ATTEMPT)
        self._sweep_expired = redis.register_script(_SWEEP_EXPIRED)
        self._count = redis.register_script(_COUNT)
        self._release_lock = redis.register_script(_RELEASE_LOCK)

    @staticmethod
    def share_key(share_id: str) -> str:
        return f"{PREFIX}share:{share_id}"

    @staticmethod
    def gone_key(share_id: str) -> str:
        return f"{PREFIX}gone:{share_id}"

    @staticmethod
    def upload_key(share_id: str) -> str:
        return f"{PREFIX}upload:{share_id}"

    @staticmethod
    def revoke_key(revoke_id: str) -> str:
        return f"{PREFIX}revoke:{revoke_id}"

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # --- uploads in progress ---

    async def mark_uploading(self, share_id: str, ttl_seconds: int) -> None:
        await self.redis.set(self.upload_key(share_id), b"1", ex=ttl_seconds)

    async def clear_uploading(self, share_id: str) -> None:
        await self.redis.delete(self.upload_key(share_id))

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
                self.share_key(share_id),
                self.gone_key(share_id),
                self.upload_key(share_id),
                self.revoke_key(record.revoke_id),
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
        fields = cast(dict[bytes, bytes], await self.redis.hgetall(self.share_key(share_id)))
        if not fields:
            return None
        return ShareRecord.from_redis(share_id, fields)

    async def revoke_target(self, revoke_id: str) -> str | None:
        share_id = cast(bytes | None, await self.redis.get(self.revoke_key(revoke_id)))
        return None if share_id is None else share_id.decode()

    async def gone_reason(self, share_id: str) -> GoneReason:
        reason = cast(bytes | None, await self.redis.get(self.gone_key(share_id)))
        if reason is None:
            return "unknown"
        return cast(GoneReason, reason.decode())

    async def claim(self, share_id: str, reason: GoneReason = "downloaded") -> bool:
        """Consume the share; True for exactly one caller."""
        counter, event = _ENDINGS[reason]
        keys = [self.share_key(share_id), self.gone_key(share_id)]
        args = [reason, self.tombstone_seconds, share_id, counter, event]
        return bool(await self._claim(keys=keys, args=args))

    async def record_failed_attempt(self, share_id: str, max_tries: int) -> int:
        keys = [self.share_key(share_id), self.gone_key(share_id)]
        args: list[str | int] = [max_tries, self.tombstone_seconds, share_id]
        return int(await self._fail_attempt(keys=keys, args=args))

    async def sweep_expired(self) -> int:
        """Count and unindex shares whose TTL ran out (Redis deletes them silently)."""
        return int(await self._sweep_expired(keys=[], args=[]))

    async def count(self, counter: str, event: str = "") -> None:
        """Count something that is not a share's state change (a rate limit, a block)."""
        await self._count(keys=[], args=[counter, event])

    # --- upload progress, for the progress fragment ---

    @staticmethod
    def progress_key(upload_id: str) -> str:
        return f"{PREFIX}progress:{upload_id}"

    async def set_progress(
        self, upload_id: str, fields: dict[str, str | int | float], ttl_seconds: int
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.progress_key(upload_id), mapping=fields)  # type: ignore[arg-type]
            pipe.expire(self.progress_key(upload_id), ttl_seconds)
            await pipe.execute()

    async def get_progress(self, upload_id: str) -> dict[str, str]:
        fields = cast(dict[bytes, bytes], await self.redis.hgetall(self.progress_key(upload_id)))
        return {key.decode(): value.decode() for key, value in fields.items()}

    # --- janitor support ---

    async def referenced(self, share_ids: list[str]) -> set[str]:
        """Which of these ids have a live record or an upload in progress.

        One EXISTS over both keys per id, so a record written just as its
        upload mark is removed is never seen as neither.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            for share_id in share_ids:
                pipe.exists(self.share_key(share_id), self.upload_key(share_id))
            counts = await pipe.execute()
        return {share_id for share_id, count in zip(share_ids, counts, strict=True) if count}

    async def acquire_lock(self, name: str, ttl_seconds: float) -> str | None:
        owner = secrets.token_hex(16)
        acquired = await self.redis.set(
            f"{PREFIX}{name}:lock", owner, nx=True, px=max(1, int(ttl_seconds * 1000))
        )
        return owner if acquired else None

    async def release_lock(self, name: str, owner: str) -> None:
        await self._release_lock(keys=[f"{PREFIX}{name}:lock"], args=[owner])

    async def record_janitor_run(self, summary: dict[str, int | float]) -> None:
        await self.redis.hset(f"{PREFIX}janitor:last", mapping=summary)  # type: ignore[arg-type]
