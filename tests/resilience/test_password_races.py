"""The wrong-password limit under concurrent guesses, and the unlock proof.

Attacks as an attacker would run them: many wrong guesses at once plus the right one,
on both routes that check a password, in-process and across two server workers. Every
guess that Argon2 evaluates is counted inside the server (``ots_password_checks_total``),
so the tests can tell evaluated guesses from refused ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis
from prometheus_client import REGISTRY
from quart import Quart
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.domain.crypto import Argon2Params
from onetimeshare.domain.metadata import MetadataStore
from onetimeshare.domain.passwords import Argon2Pool
from tests.helpers import (
    BROWSER,
    FORM,
    JSON,
    METRICS_TOKEN,
    UNLOCK_INPUT,
    LiveServerFactory,
    running_app,
    share_keys,
    token_path,
    upload,
    wait_until_async,
)

RIGHT = "the-right-password"


def evaluated(outcome: str | None = None) -> int:
    """Share passwords Argon2 has evaluated in this process (right, wrong, or both)."""
    total = 0.0
    for each in ("right", "wrong") if outcome is None else (outcome,):
        value = REGISTRY.get_sample_value("ots_password_checks_total", {"outcome": each})
        assert value is not None, "password checks are not counted"
        total += value
    return int(total)


def failed_passwords(redis_client: redis.Redis) -> int:
    return int(redis_client.hget("ots:stats", "failed_passwords") or 0)


@pytest.fixture(params=[1, 4], ids=["one-hash-at-a-time", "four-hashes-at-once"])
async def race_app(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Quart]:
    # With four hashing threads, guesses are checked concurrently and the 429 path is taken.
    async with running_app(
        dataclasses.replace(settings, argon2_max_concurrent=request.param)
    ) as application:
        yield application


async def guess_all(client: QuartClient, path: str, wrong: int) -> list[tuple[str, Any]]:
    """``wrong`` wrong guesses and the right one, sent last, all at once."""
    guesses = [f"wrong-{index}" for index in range(wrong)] + [RIGHT]

    async def one(password: str) -> tuple[str, Any]:
        response = await client.post(
            path, data=f"password={password}", headers={**FORM, **JSON, **BROWSER}
        )
        return password, response

    return list(await asyncio.gather(*(one(password) for password in guesses)))


@pytest.mark.parametrize("wrong", [20, 100])
@pytest.mark.parametrize("route", ["unlock", "download"])
async def test_concurrent_guesses_never_evaluate_more_than_the_limit(
    race_app: Quart, settings: Settings, redis_client: redis.Redis, wrong: int, route: str
) -> None:
    client = race_app.test_client()
    limit = settings.max_password_tries
    for _round in range(3):
        share = await upload(client, b"guarded", password=RIGHT)
        path = token_path(share) + ("/unlock" if route == "unlock" else "")
        evaluated_before, wrong_before = evaluated(), evaluated("wrong")
        failed_before = failed_passwords(redis_client)

        answers = await guess_all(client, path, wrong)

        # A right guess gives its try back, so the limit bounds the wrong ones; the one
        # right guess sent may come on top.
        wrong_checks = evaluated("wrong") - wrong_before
        assert wrong_checks <= limit, f"{wrong_checks} wrong guesses evaluated, limit {limit}"
        assert evaluated() - evaluated_before <= limit + 1
        # The admin counter counts every evaluated wrong guess.
        assert failed_passwords(redis_client) - failed_before == wrong_checks
        statuses = Counter(response.status_code for _, response in answers)
        assert set(statuses) <= {200, 401, 403, 410, 429}, statuses
        # (A wrong guess evaluated while the right one won is answered 410, like the rest.)
        assert statuses[401] + statuses[403] <= wrong_checks
        # Every answer that says what happened to the share tells the same story: the
        # reason stored when it ended, whichever guess (the right one too) asked.
        stored = redis_client.get(f"ots:gone:{share['id']}")
        for _, response in answers:
            if response.status_code == 410:
                assert (await response.get_json())["reason"] == (stored or b"").decode()
            if response.status_code == 429:
                assert response.headers["Retry-After"] == "1"
                body = await response.get_json()
                assert body["code"] == "password_check_busy" and body["retry_after"] == 1
        if stored == b"destroyed":
            assert statuses[403] == 1 and statuses[401] == limit - 1
        if route == "download":
            # A download after destruction is impossible: the right guess got the file
            # exactly when it won the share, and nothing else got anything.
            assert (_statuses(answers, RIGHT) == [200]) == (stored == b"downloaded")
            assert statuses[200] == (stored == b"downloaded")
        elif stored is None:
            assert redis_client.exists(f"ots:share:{share['id']}")
        # No lease outlives the race.
        assert not redis_client.exists(f"ots:checks:{share['id']}")
        redis_client.flushdb()


def _statuses(answers: list[tuple[str, Any]], password: str) -> list[int]:
    return [response.status_code for guess, response in answers if guess == password]


async def test_the_right_password_after_destruction_gets_the_same_answer_as_any_guess(
    client: QuartClient, settings: Settings
) -> None:
    for route in ("/unlock", ""):
        share = await upload(client, b"guarded", password=RIGHT)
        path = token_path(share) + route
        for index in range(settings.max_password_tries):
            await client.post(path, data=f"password=no-{index}", headers={**FORM, **JSON})
        answers = [
            await client.post(path, data=f"password={guess}", headers={**FORM, **JSON})
            for guess in ("still-wrong", RIGHT)
        ]
        bodies = [(answer.status_code, await answer.get_json()) for answer in answers]
        assert bodies[0] == bodies[1]
        assert bodies[0][0] == 410 and bodies[0][1]["reason"] == "destroyed"


async def test_a_check_in_flight_elsewhere_holds_the_last_try_until_its_lease_lapses(
    app: Quart, client: QuartClient, settings: Settings, redis_client: redis.Redis
) -> None:
    """A worker killed mid-Argon2 leaves its lease behind: the try is held, then given back."""
    share = await upload(client, b"guarded", password=RIGHT)
    path = token_path(share)
    for index in range(settings.max_password_tries - 1):
        wrong = await client.post(path, data=f"password=no-{index}", headers={**FORM, **JSON})
        assert wrong.status_code == 401
    # Another worker reserved the last try and died before settling it.
    metadata: MetadataStore = app.extensions["onetimeshare"].metadata
    held = await metadata.reserve_check(share["id"], settings.max_password_tries, 1.0)
    assert held.reserved
    before = evaluated()

    busy = await client.post(path, data=f"password={RIGHT}", headers={**FORM, **JSON})
    assert busy.status_code == 429
    assert busy.headers["Retry-After"] == "1"
    assert (await busy.get_json())["code"] == "password_check_busy"
    page = await client.post(path, data=f"password={RIGHT}", headers={**FORM, **BROWSER})
    assert page.status_code == 429
    assert page.headers["Retry-After"] == "1"
    text = await page.get_data(as_text=True)
    assert "being checked right now" in text and 'name="password"' in text
    assert evaluated() == before, "a refused guess must not be evaluated"

    async def lease_lapsed() -> bool:
        answer = await client.post(path, data=f"password={RIGHT}", headers={**FORM})
        if answer.status_code == 429:
            return False
        assert answer.status_code == 200
        assert await answer.get_data() == b"guarded"
        return True

    await wait_until_async(lease_lapsed, timeout=10, interval=0.1)
    assert evaluated() == before + 1


async def test_lowering_the_limit_below_a_shares_tries_spends_it(
    app: Quart, client: QuartClient, settings: Settings, redis_client: redis.Redis
) -> None:
    share = await upload(client, b"guarded", password=RIGHT)
    redis_client.hset(f"ots:share:{share['id']}", "tries", settings.max_password_tries)
    answer = await client.post(
        token_path(share), data=f"password={RIGHT}", headers={**FORM, **JSON}
    )
    assert answer.status_code == 410
    assert (await answer.get_json())["reason"] == "destroyed"


def test_concurrent_guesses_across_two_workers_never_exceed_the_limit(
    live_server_factory: LiveServerFactory, redis_client: redis.Redis
) -> None:
    server = live_server_factory(
        workers=2,
        metrics_token=METRICS_TOKEN,
        argon2=Argon2Params(time_cost=1, memory_kib=8 * 1024, parallelism=1),
    )
    headers = {**BROWSER, **JSON}

    def evaluated_by_server() -> int:
        text = httpx.get(
            f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        ).text
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("ots_password_checks_total{")
            )
        )

    for route in ("/unlock", ""):
        response = httpx.post(
            f"{server.base_url}/upload",
            files={"file": ("f.bin", b"guarded")},
            data={"password": RIGHT},
            headers=JSON,
        )
        share = response.json()
        path = f"{server.base_url}{token_path(share)}{route}"
        before = evaluated_by_server()

        async def race(url: str = path) -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30, headers=headers) as client:
                guesses = [f"wrong-{index}" for index in range(20)] + [RIGHT]
                return await asyncio.gather(
                    *(client.post(url, data={"password": guess}) for guess in guesses)
                )

        answers = asyncio.run(race())
        assert evaluated_by_server() - before <= 5 + 1  # five wrong, and the right one
        stored = redis_client.get(f"ots:gone:{share['id']}")
        for answer in answers:
            assert answer.status_code in {200, 401, 403, 410, 429}
            if answer.status_code == 410:
                assert answer.json()["reason"] == (stored or b"").decode()


# --- the unlock proof -----------------------------------------------------------------


async def test_the_unlock_proof_is_single_use_bound_to_its_share_and_short_lived(
    app: Quart, client: QuartClient, redis_client: redis.Redis
) -> None:
    share = await upload(client, b"first", password=RIGHT)
    other = await upload(client, b"second", password=RIGHT)
    unlocked = await client.post(
        token_path(share) + "/unlock", data=f"password={RIGHT}", headers=FORM
    )
    text = await unlocked.get_data(as_text=True)
    assert RIGHT not in text
    match = UNLOCK_INPUT.search(text)
    assert match is not None
    proof = match.group(1)
    [ticket] = [key for key in share_keys(redis_client) if key.startswith(b"ots:ticket:unlock:")]
    assert 0 < redis_client.ttl(ticket) <= 300
    # Redis holds neither the password nor the Argon2 output it was checked with.
    record = redis_client.hgetall(f"ots:share:{share['id']}")
    params = Argon2Params(int(record[b"a2t"]), int(record[b"a2m"]), int(record[b"a2p"]))
    password_hash = params.hash(RIGHT.encode(), record[b"salt"])
    for key in redis_client.scan_iter():
        if redis_client.type(key) == b"string":
            value = redis_client.get(key) or b""
            assert RIGHT.encode() not in value and password_hash not in value

    # Not for another share, and that attempt does not use it up.
    elsewhere = await client.post(
        token_path(other), data=f"unlock={proof}", headers={**FORM, **JSON}
    )
    assert elsewhere.status_code == 401
    assert "expired" in (await elsewhere.get_json())["error"]
    assert redis_client.exists(ticket) == 0, "a proof is deleted on any use"


async def test_a_download_with_the_proof_evaluates_no_password(
    client: QuartClient, redis_client: redis.Redis
) -> None:
    share = await upload(client, b"guarded", password=RIGHT)
    unlocked = await client.post(
        token_path(share) + "/unlock", data=f"password={RIGHT}", headers=FORM
    )
    match = UNLOCK_INPUT.search(await unlocked.get_data(as_text=True))
    assert match is not None
    before = evaluated()
    download = await client.post(token_path(share), data=f"unlock={match.group(1)}", headers=FORM)
    assert download.status_code == 200
    assert await download.get_data() == b"guarded"
    assert evaluated() == before
    assert not [key for key in share_keys(redis_client) if key.startswith(b"ots:ticket:")]


async def test_a_forged_or_spent_proof_asks_for_the_password_again(
    client: QuartClient, settings: Settings
) -> None:
    share = await upload(client, b"guarded", password=RIGHT)
    for proof in ("A" * 43, "not-a-proof", ""):
        answer = await client.post(
            token_path(share), data=f"unlock={proof}", headers={**FORM, **JSON}
        )
        assert answer.status_code == 401
        body = await answer.get_json()
        assert body["tries_left"] == settings.max_password_tries  # nothing was counted
    page = await client.post(token_path(share), data="unlock=" + "A" * 43, headers=FORM)
    assert page.status_code == 401
    assert "password check has expired" in await page.get_data(as_text=True)


# --- checks that take longer than their lease ------------------------------------------


async def test_a_hash_slower_than_its_lease_still_holds_its_try(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """The lease is renewed while the hash runs: once its first lifetime has passed, the
    last try is still held, and a second guess is refused rather than evaluated."""
    slow = dataclasses.replace(
        settings,
        argon2=Argon2Params(time_cost=10, memory_kib=64 * 1024, parallelism=1),
        argon2_max_concurrent=2,  # a free hashing thread for the second guess
    )
    async with running_app(slow) as application:
        application.extensions["onetimeshare"].shares.check_lease_seconds = 0.1
        client = application.test_client()
        share = await upload(client, b"guarded", password=RIGHT)
        checks = f"ots:checks:{share['id']}"
        redis_client.hset(f"ots:share:{share['id']}", "tries", settings.max_password_tries - 1)
        path = token_path(share)
        wrong_before = evaluated("wrong")

        first = asyncio.create_task(
            client.post(path, data="password=first", headers={**FORM, **JSON})
        )

        def redis_now_ms() -> int:
            seconds, micros = redis_client.time()
            return seconds * 1000 + micros // 1000

        async def reserved() -> bool:
            return bool(redis_client.zcard(checks))

        await wait_until_async(reserved)
        [(_, first_lapse)] = redis_client.zrange(checks, 0, -1, withscores=True)

        async def first_lifetime_over() -> bool:
            return redis_now_ms() > first_lapse

        await wait_until_async(first_lifetime_over)
        assert not first.done(), "the hash was too quick to outlive its lease"
        second = await client.post(path, data="password=second", headers={**FORM, **JSON})
        assert second.status_code == 429
        assert (await first).status_code == 403
    assert evaluated("wrong") - wrong_before == 1
    assert redis_client.get(f"ots:gone:{share['id']}") == b"destroyed"


async def test_an_abandoned_hash_keeps_its_turn_until_its_thread_is_free() -> None:
    """A caller cancelled mid-hash cannot hand its turn on while the thread still works:
    the next caller would reserve a try and then wait behind the abandoned hash."""
    pool = Argon2Pool(1)
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_hash() -> None:
        started.set()
        release.wait(timeout=30)
        finished.set()

    async def next_caller() -> bool:
        async with pool.turn():
            return finished.is_set()

    try:
        abandoned = asyncio.create_task(pool.run(slow_hash))
        assert await asyncio.to_thread(started.wait, 10)
        abandoned.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await abandoned
        waiting = asyncio.create_task(next_caller())
        for _ in range(3):  # a free turn is taken without suspending: give it the chance
            await asyncio.sleep(0)
        assert not waiting.done(), "the turn was handed on while the hash still ran"
        release.set()
        assert await waiting
    finally:
        release.set()
        pool.close()
