"""Argon2id off the event loop, a bounded number at a time, at a lower CPU priority.

Each call allocates its full memory cost (64 MiB by default), so an unbounded
number of concurrent password checks would let a burst of requests exhaust
memory; callers beyond the bound wait their turn. The hashing threads also run
at a lower scheduling priority (nice 10, inherited by Argon2's own lane threads),
so on a small machine a few password checks cannot starve the event loops of CPU:
in bench/responsiveness.py, four checks alongside two 1 GiB transfers stalled a
loop for 65 ms at equal priority.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

from .crypto import Argon2Params

T = TypeVar("T")
NICENESS = 10


def _lower_priority() -> None:
    # Linux schedules threads individually: this lowers only the current thread,
    # and threads it starts (Argon2's lanes) inherit it.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)


class Argon2Turn:
    """A hashing thread that is this caller's alone until the turn ends."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self.running: concurrent.futures.Future[object] | None = None

    async def hash(self, params: Argon2Params, password: bytes, salt: bytes) -> bytes:
        return await self.run(params.hash, password, salt)

    async def run(self, function: Callable[..., T], *arguments: object) -> T:
        future = self._executor.submit(function, *arguments)
        self.running = cast("concurrent.futures.Future[object]", future)
        return await asyncio.wrap_future(future)


class Argon2Pool:
    def __init__(self, max_concurrent: int) -> None:
        # Callers wait for a turn here, not in the executor's queue: whoever holds a turn
        # starts hashing at once. That lets a share's password check reserve its try in
        # Redis only when its hash is about to run. A caller cancelled while waiting
        # simply leaves the line; one cancelled while its hash runs keeps the turn taken
        # until the thread is really free (a thread cannot be stopped), so the next
        # caller never reserves a try and then waits behind an abandoned hash.
        self._turns = asyncio.Semaphore(max_concurrent)
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="argon2", initializer=_lower_priority
        )

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[Argon2Turn]:
        await self._turns.acquire()
        turn = Argon2Turn(self._executor)
        try:
            yield turn
        finally:
            running = turn.running
            if running is None or running.done():
                self._turns.release()
            else:
                loop = asyncio.get_running_loop()
                running.add_done_callback(lambda _: self._release_from_thread(loop))

    def _release_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs in the hashing thread when an abandoned hash ends.
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(self._turns.release)

    async def hash(self, params: Argon2Params, password: bytes, salt: bytes) -> bytes:
        async with self.turn() as turn:
            return await turn.hash(params, password, salt)

    async def run(self, function: Callable[..., T], *arguments: object) -> T:
        """Run any Argon2 work (hashing, verifying) in a pool thread, a bounded number at once."""
        async with self.turn() as turn:
            return await turn.run(function, *arguments)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
