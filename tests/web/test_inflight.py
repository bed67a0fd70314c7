"""Upload request slots: leases in a real Redis, kept alive by their holder, lapsing without it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis
from redis.asyncio import Redis

from onetimeshare.domain.keys import UPLOAD_SLOTS as PREFIX
from onetimeshare.web.inflight import UploadRequestSlots
from tests.helpers import wait_until_async

CLIENT = "0123456789abcdef0123456789abcdef"


@pytest.fixture
async def async_redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_dead_holders_lease_lapses_while_a_live_one_is_kept(
    async_redis: Redis, redis_client: redis.Redis
) -> None:
    slots = UploadRequestSlots(async_redis, per_client=2, lease_seconds=1)

    async def a_slot_is_free() -> bool:
        lease = await slots.take(CLIENT)
        if lease is not None:
            await slots.release(CLIENT, lease)
        return lease is not None

    async with slots.hold(CLIENT) as live:
        assert live
        # Taken and never refreshed or released: what a worker killed mid-upload leaves.
        dead = await slots.take(CLIENT)
        assert dead is not None
        async with slots.hold(CLIENT) as third:
            assert not third
        await wait_until_async(a_slot_is_free, timeout=10)
        # The dead lease lapsed after its second; the live one, older, is still held.
        assert redis_client.zcard(PREFIX + CLIENT) == 1
        assert not await slots.refresh(CLIENT, dead)
    assert redis_client.exists(PREFIX + CLIENT) == 0


async def test_a_cancelled_holder_frees_its_slot(
    async_redis: Redis, redis_client: redis.Redis
) -> None:
    slots = UploadRequestSlots(async_redis, per_client=1, lease_seconds=30)
    holding = asyncio.Event()

    async def upload_request() -> None:
        async with slots.hold(CLIENT) as held:
            assert held
            holding.set()
            await asyncio.Event().wait()  # a request that waits for its client

    task = asyncio.create_task(upload_request())
    await holding.wait()
    assert await slots.take(CLIENT) is None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert redis_client.exists(PREFIX + CLIENT) == 0
    assert await slots.take(CLIENT) is not None


async def test_clients_have_slots_of_their_own(async_redis: Redis) -> None:
    slots = UploadRequestSlots(async_redis, per_client=1, lease_seconds=30)
    async with slots.hold(CLIENT) as first, slots.hold("another-client") as second:
        assert first and second
        async with slots.hold(CLIENT) as again:
            assert not again
