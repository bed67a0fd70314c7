"""Rate limits shared by every worker and instance: GCRA in one Lua script per request.

quart-rate-limiter decides with the generic cell rate algorithm, but through a
store interface that reads then writes, once per limit, with no expiry on its
keys: two workers can both read the same old value and both let a request
through, and keys pile up for ever. Here the whole decision for a request (all
its limits) is one Lua script: it reads every limit's theoretical arrival time
(TAT), rejects if any is exhausted, and otherwise advances them all, each key
expiring when its TAT passes. The clock is Redis's, so instances with skewed
clocks still agree.

Keys (named in domain/keys.py): ``ots:rl:<category>:<count>-<period>:<client key>``,
one per limit, holding a TAT and expiring when it passes (a day at most with the
default limits). The client key is an HMAC of the client's address or IPv6 network (web/clients.py),
never the address: a copy of Redis does not say who used the service.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from quart import Quart, Response, current_app, request
from quart_rate_limiter import (
    QUART_RATE_LIMITER_EXEMPT_ATTRIBUTE,
    RateLimit,
    RateLimiter,
    RateLimitExceeded,
    rate_exempt,
)
from quart_rate_limiter.store import RateLimiterStoreABC
from redis.asyncio import Redis

from ..domain import keys
from .clients import client_key

F = TypeVar("F", bound=Callable[..., Any])

# KEYS: one per limit. ARGV: inverse_1, period_1, inverse_2, period_2, ... (seconds).
# Returns "0" when allowed (and recorded), else the seconds to wait.
_CHECK = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local new_tats = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local inverse = tonumber(ARGV[2 * i - 1])
  local period = tonumber(ARGV[2 * i])
  local stored = tonumber(redis.call('GET', key) or now)
  local tat = math.max(stored, now)
  local allowance = period - inverse
  if tat - now > allowance then
    wait = math.max(wait, tat - allowance - now)
  end
  new_tats[i] = tat + inverse
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  local ttl = math.ceil((new_tats[i] - now) * 1000)
  redis.call('SET', key, string.format('%.6f', new_tats[i]), 'PX', ttl)
end
return '0'
"""


def limits_of(spec: tuple[tuple[int, int], ...]) -> list[RateLimit]:
    return [RateLimit(count, timedelta(seconds=seconds)) for count, seconds in spec]


class RedisGcraStore(RateLimiterStoreABC):
    """Holds the limiter's TATs in Redis; ``check`` is the atomic decision."""

    def __init__(self) -> None:
        self._redis: Redis | None = None
        self._check: Any = None

    def attach(self, redis: Redis) -> None:
        self._redis = redis
        self._check = redis.register_script(_CHECK)

    async def check(self, keys: list[str], limits: list[RateLimit]) -> float:
        """Record one request against every limit, or none if any is exhausted.

        Returns 0 when allowed, else the seconds until the request would be allowed.
        """
        arguments: list[float] = []
        for limit in limits:
            arguments += [limit.inverse, limit.period.total_seconds()]
        return float(await self._check(keys=keys, args=arguments))

    async def get(self, key: str, default: datetime) -> datetime:
        assert self._redis is not None
        stored = await self._redis.get(key)
        if stored is None:
            return default
        return datetime.fromtimestamp(float(stored), UTC)

    async def set(self, key: str, tat: datetime) -> None:
        raise NotImplementedError("TATs are only written by the atomic check")

    async def before_serving(self) -> None:
        """The Redis client is attached by the app's services at start-up."""

    async def after_serving(self) -> None:
        """The app's services close the Redis client."""


LIMITED_ATTRIBUTE = "_ots_rate_category"
EXEMPT_ENDPOINTS = frozenset({"static"})  # Quart's own static route: cheap files


def limited(category: str) -> Callable[[F], F]:
    """Declare the limit category of a route; the limits themselves come from settings.

    Routes of one category share one budget per client, so a password guesser
    cannot double their tries by alternating between two routes.
    """

    def decorate(view: F) -> F:
        setattr(view, LIMITED_ATTRIBUTE, category)
        return view

    return decorate


exempt = rate_exempt


class AtomicRateLimiter(RateLimiter):
    """quart-rate-limiter with the check-and-update done by one Lua script."""

    store: RedisGcraStore

    def __init__(
        self,
        app: Quart,
        store: RedisGcraStore,
        categories: Mapping[str, list[RateLimit]],
        *,
        enabled: bool,
    ) -> None:
        self.categories = dict(categories)
        super().__init__(app, key_function=_client_key, store=store, enabled=enabled)

    def _get_limits_for_view_function(
        self, view_func: Callable[..., Any], blueprint: Any
    ) -> list[RateLimit]:
        if getattr(view_func, QUART_RATE_LIMITER_EXEMPT_ATTRIBUTE, False):
            return []
        if request.endpoint in EXEMPT_ENDPOINTS:
            return []
        return self.categories[category_of(view_func)]

    async def _raise_on_rejection(self, endpoint: str, rate_limits: list[RateLimit]) -> None:
        if not rate_limits:
            return
        keys = [await self._create_key(endpoint, limit) for limit in rate_limits]
        wait = await self.store.check(keys, rate_limits)
        if wait > 0:
            raise RateLimitExceeded(max(1, math.ceil(wait)))

    async def _update_limits(self, endpoint: str, rate_limits: list[RateLimit]) -> None:
        """Already recorded by the atomic check."""

    async def _after_request(self, response: Response) -> Response:
        # The base class reads the store again to add RateLimit-* headers to every
        # answer: one more Redis round trip per request for a header nobody needs.
        # A 429 still carries Retry-After.
        return response

    async def _create_key(self, endpoint: str, rate_limit: RateLimit) -> str:
        category = category_of(current_app.view_functions[endpoint])
        return keys.rate_limit(category, rate_limit.key, client_key())


def category_of(view_func: Callable[..., Any]) -> str:
    return str(getattr(view_func, LIMITED_ATTRIBUTE, "page"))


async def _client_key() -> str:
    """The limiter's key function: the same client key everything per client uses.

    Deliberately not ``request.access_route``, which believes any X-Forwarded-For.
    """
    return client_key()
