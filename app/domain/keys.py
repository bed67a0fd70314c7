"""The Redis key layout: every key the service reads or writes is named here, and only here.

``<id>`` is a share id derived from the token, never the token; ``<client>`` is a keyed
hash of a client's address or IPv6 network (web/clients.py), never the address.

A share (domain/metadata.py keeps these, always through its Lua scripts when a state
changes):

* ``ots:share:<id>``    hash, TTL = the share's expiry. Holds the sealed envelope;
  deleting it is what makes the share unrecoverable (crypto-shredding).
* ``ots:gone:<id>``     why a share no longer works ("expired" until something else
  happens), kept ``tombstone_seconds`` past the expiry so the link can say why.
* ``ots:upload:<id>``   present while an upload streams; the janitor leaves the
  ``.part``/``.blob`` of such an id alone.
* ``ots:revoke:<rid>``  the share id a revoke link may destroy; ``<rid>`` is derived
  from the uploader's separate revoke token. It lives as long as the share, then as
  long as its tombstone, so the revoke page can say what became of the share.
* ``ots:checks:<id>``   sorted set of the password checks in flight for a share: lease
  ids scored by when they lapse. A guess is evaluated only after it reserved a lease
  here, and only while ``tries`` + leases < the limit, so concurrency cannot buy more
  guesses; a worker that dies mid-check frees its lease when it lapses.
* ``ots:ticket:<purpose>:<ticket id>``  a short-lived, single-use capability (the
  unlock proof): the share id and a payload sealed under a key only the client holds.
* ``ots:progress:<upload id>``  bytes received and the phase of an upload, for the
  progress fragment; no secrets.
* ``ots:tus:<tus id>``  hash, a resumable upload (domain/resumable.py): share id,
  length, offset, expiry and, sealed under the secret in the upload's address (``<tus
  id>`` is derived from it), everything that makes the share; after completion only
  the share's links, sealed the same way, for the result window. ``ots:tus:<tus
  id>:lock`` while a request appends; ``ots:tus:ended:<tus id>`` says a vanished
  upload existed (410, not 404).

Bookkeeping, kept by the same scripts that change a share's state, so it can never
disagree with it (read by domain/stats.py):

* ``ots:stats``         hash of counters since the start (``COUNTERS`` in stats.py) and
  ``bytes_stored``.
* ``ots:stats:minute:<unix minute>``, ``ots:stats:hour:<unix hour>``  the same counters
  per minute and per hour, kept ``MINUTE_BUCKET_SECONDS`` / ``HOUR_BUCKET_SECONDS``.
* ``ots:events``        stream of the latest ``EVENTS_KEPT`` (about) events: type, the
  first 8 characters of the share id, size and kind.
* ``ots:active:expiry``, ``ots:active:size``  sorted sets of live share ids by expiry
  time and by size; ``ots:active:info`` hash of id -> ``kind|protected|created``.

The service's own state:

* ``ots:<name>:lock``   one holder at a time across workers and instances
  (``ots:janitor:lock``); ``ots:janitor:last`` hash, the janitor's last report.
* ``ots:admin:session:<sha256 of the session id>``  a live admin session, expiring
  with it (domain/admin_access.py).
* ``ots:looplag:<pid>`` hash, a worker's event-loop lag (worst, p99, stalls over
  20 ms), published each second, expiring ``LOOP_LAG_SECONDS`` after the last;
  ``ots:looplag`` sorted set of the pids that published, by when (process/looplag.py).

About clients (web/), each kept only until its budget refills or its request ends:

* ``ots:rl:<category>:<count>-<period>:<client>``  one rate limit's theoretical
  arrival time, expiring when it passes (web/ratelimit.py).
* ``ots:inflight:upload:<client>``  sorted set of the client's upload requests in
  flight: lease ids scored by when they lapse (web/inflight.py).

Every state change that must be exactly-once runs as one Lua script. Scripts name their
keys through ``LUA`` below rather than only through KEYS: the stats buckets are named
from Redis's clock and the index entries from ids the script itself finds, so they
cannot be declared in advance. The service runs on a single Redis, not a Redis Cluster.
"""

from __future__ import annotations

import re

PREFIX = "ots:"

SHARE = PREFIX + "share:"
GONE = PREFIX + "gone:"
UPLOAD = PREFIX + "upload:"
REVOKE = PREFIX + "revoke:"
CHECKS = PREFIX + "checks:"
TICKET = PREFIX + "ticket:"
PROGRESS = PREFIX + "progress:"
RESUMABLE = PREFIX + "tus:"
RESUMABLE_ENDED = RESUMABLE + "ended:"

STATS = PREFIX + "stats"
STATS_MINUTE = STATS + ":minute:"
STATS_HOUR = STATS + ":hour:"
# Kept past what the dashboard reads (the last 60 minutes, the last 24 hours).
MINUTE_BUCKET_SECONDS = 7260
HOUR_BUCKET_SECONDS = 90000
EVENTS = PREFIX + "events"
EVENTS_KEPT = 1000
ACTIVE_EXPIRY = PREFIX + "active:expiry"
ACTIVE_SIZE = PREFIX + "active:size"
ACTIVE_INFO = PREFIX + "active:info"

JANITOR_LAST = PREFIX + "janitor:last"
ADMIN_SESSION = PREFIX + "admin:session:"
LOOP_LAG_WORKERS = PREFIX + "looplag"
LOOP_LAG = LOOP_LAG_WORKERS + ":"
LOOP_LAG_SECONDS = 30

RATE_LIMIT = PREFIX + "rl:"
UPLOAD_SLOTS = PREFIX + "inflight:upload:"


def share(share_id: str) -> str:
    return SHARE + share_id


def gone(share_id: str) -> str:
    return GONE + share_id


def upload(share_id: str) -> str:
    return UPLOAD + share_id


def revoke(revoke_id: str) -> str:
    return REVOKE + revoke_id


def checks(share_id: str) -> str:
    return CHECKS + share_id


def ticket(purpose: str, ticket_id: str) -> str:
    return f"{TICKET}{purpose}:{ticket_id}"


def progress(upload_id: str) -> str:
    return PROGRESS + upload_id


def resumable(upload_id: str) -> str:
    return RESUMABLE + upload_id


def resumable_ended(upload_id: str) -> str:
    return RESUMABLE_ENDED + upload_id


def resumable_lock_name(upload_id: str) -> str:
    """The name for ``lock()``: ``ots:tus:<tus id>:lock``."""
    return f"tus:{upload_id}"


def stats_minute(minute: int) -> str:
    return f"{STATS_MINUTE}{minute}"


def stats_hour(hour: int) -> str:
    return f"{STATS_HOUR}{hour}"


def lock(name: str) -> str:
    return f"{PREFIX}{name}:lock"


def admin_session(session_digest: str) -> str:
    return ADMIN_SESSION + session_digest


def loop_lag(pid: int) -> str:
    return f"{LOOP_LAG}{pid}"


def rate_limit(category: str, limit: str, client: str) -> str:
    return f"{RATE_LIMIT}{category}:{limit}:{client}"


def upload_slots(client: str) -> str:
    return UPLOAD_SLOTS + client


_LUA_SAFE = re.compile(r"[a-z:]+")


def _lua_string(value: str) -> str:
    # The prefixes go into the script text verbatim; none may need quoting.
    assert _LUA_SAFE.fullmatch(value), value
    return f"'{value}'"


# The layout as Lua locals, prepended to every script that names a key by itself, so
# the scripts and the Python code cannot drift apart. Scripts still take what the caller
# knows (share id, revoke id, counters) as KEYS and ARGV, unchanged.
LUA = "\n".join(
    [
        f"local SHARE = {_lua_string(SHARE)}",
        f"local GONE = {_lua_string(GONE)}",
        f"local REVOKE = {_lua_string(REVOKE)}",
        f"local CHECKS = {_lua_string(CHECKS)}",
        f"local STATS = {_lua_string(STATS)}",
        f"local STATS_MINUTE = {_lua_string(STATS_MINUTE)}",
        f"local STATS_HOUR = {_lua_string(STATS_HOUR)}",
        f"local MINUTE_BUCKET_SECONDS = {MINUTE_BUCKET_SECONDS:d}",
        f"local HOUR_BUCKET_SECONDS = {HOUR_BUCKET_SECONDS:d}",
        f"local EVENTS = {_lua_string(EVENTS)}",
        f"local EVENTS_KEPT = '{EVENTS_KEPT:d}'",
        f"local ACTIVE_EXPIRY = {_lua_string(ACTIVE_EXPIRY)}",
        f"local ACTIVE_SIZE = {_lua_string(ACTIVE_SIZE)}",
        f"local ACTIVE_INFO = {_lua_string(ACTIVE_INFO)}",
        "",
    ]
)
