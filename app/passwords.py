"""Argon2id off the event loop, a bounded number at a time.

Each call allocates its full memory cost (64 MiB by default), so an unbounded
number of concurrent password checks would let a burst of requests exhaust
memory. Callers beyond the bound wait their turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from .crypto import Argon2Params

T = TypeVar("T")


class Argon2Pool:
    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max_concurrent
        self._slots = asyncio.Semaphore(max_concurrent)

    async def hash(self, params: Argon2Params, password: bytes, salt: bytes) -> bytes:
        return await self.run(params.hash, password, salt)

    async def run(self, function: Callable[..., T], *arguments: object) -> T:
        """Run any Argon2 work (hashing, verifying) in a thread, a bounded number at once."""
        async with self._slots:
            return await asyncio.to_thread(function, *arguments)
