"""Quart's request plumbing, changed for large bodies: pull-based reads and idle timeouts.

Stock Quart reads the whole request body into memory as fast as the client
sends it, whatever the handler is doing, and cuts off any body or response
that takes longer than 60 seconds in total. For multi-gigabyte uploads and
downloads we want the opposite:

* The body is read from ASGI ``receive()`` only when the handler asks for the
  next piece, so the server's own bounded queue pushes back on a fast client
  and memory stays flat.
* Each read and each send must make progress within an idle timeout; a slow
  but steady transfer may take as long as it needs, as long as a body averages
  at least the minimum rate once its grace period is over.
* The body size is counted as it arrives, so a chunked body cannot walk past
  the limit the way it walks past ``MAX_CONTENT_LENGTH``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from hypercorn.typing import ASGIReceiveCallable, ASGIReceiveEvent, ASGISendCallable, ASGISendEvent
from quart.asgi import ASGIHTTPConnection
from quart.wrappers import Request
from quart.wrappers.request import Body
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge, RequestTimeout

from ..errors import UploadTooSlow

DEFAULT_BODY_LIMIT = 64 * 1024
SMALL_SEND_BYTES = 64 * 1024


class IdleGuard:
    """Cancels a body read that waits too long for one message, or for too few bytes overall.

    Two rules, one timer. Each wait for the next message may last ``seconds``
    (the idle timeout). And once ``grace`` seconds have been spent waiting on the
    client, the bytes received must average at least ``min_rate`` per second of
    that waiting: a trickle of one byte now and then never goes idle, but it
    cannot hold a request open for long either. Only time spent waiting counts,
    so a slow disk or object store on our side is never the client's fault.

    A body arrives as tens of thousands of small messages; arming a timer for
    each (``asyncio.timeout``) cost 7 % of an upload's event-loop time. This
    keeps one timer and re-arms it lazily, at the earlier of the two deadlines,
    so each wait costs two clock reads.
    """

    def __init__(
        self,
        seconds: float | None,
        *,
        min_rate: float = 0.0,
        grace: float = 0.0,
        received: Callable[[], int] = lambda: 0,
    ) -> None:
        self.seconds = seconds
        self.min_rate = min_rate
        self.grace = grace
        self.fired: str | None = None  # "idle" or "slow" once it cut a wait
        self._received = received
        self._waiter: asyncio.Task[Any] | None = None
        self._since = 0.0
        self._waited = 0.0  # seconds spent in earlier waits
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def begin(self) -> None:
        if self.seconds is None and not self.min_rate:
            return
        loop = self._loop = asyncio.get_running_loop()
        self._waiter = asyncio.current_task()
        self._since = loop.time()
        if self._handle is None:
            self._handle = loop.call_at(self._due(), self._check, loop)

    def end(self) -> None:
        if self._waiter is not None and self._loop is not None:
            self._waited += self._loop.time() - self._since
        self._waiter = None

    def close(self) -> None:
        self._waiter = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _due(self) -> float:
        """When the current wait breaks a rule, if nothing arrives before then."""
        due = math.inf
        if self.seconds is not None:
            due = self._since + self.seconds
        if self.min_rate:
            # The average falls below the floor once the waiting reaches received / rate.
            needed = max(self.grace, self._received() / self.min_rate)
            due = min(due, self._since + needed - self._waited)
        return due

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        if self._waiter is None:
            return  # the handler is busy elsewhere; the next wait re-arms the timer
        now = loop.time()
        waited = self._waited + now - self._since
        if self.seconds is not None and now >= self._since + self.seconds:
            self.fired = "idle"
        elif self.min_rate and waited >= self.grace and self._received() < self.min_rate * waited:
            self.fired = "slow"
        else:
            self._handle = loop.call_at(self._due(), self._check, loop)
            return
        self._waiter.cancel()


class StreamingBody(Body):
    """A request body that is pulled from the client piece by piece."""

    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(None, None)
        self.expected_length = expected_content_length
        self.limit = max_content_length
        self._idle = IdleGuard(None)
        self.received = 0
        self.disconnected = False
        self._receive: ASGIReceiveCallable | None = None
        self._attached = asyncio.Event()
        self._finished_reading = asyncio.Event()

    def attach(
        self,
        receive: ASGIReceiveCallable,
        idle_timeout: float | None,
        *,
        min_rate: float = 0.0,
        grace: float = 0.0,
    ) -> None:
        self._receive = receive
        self._idle = IdleGuard(
            idle_timeout, min_rate=min_rate, grace=grace, received=lambda: self.received
        )
        self._attached.set()

    def mark_empty(self) -> None:
        """The request carries no body: reading it yields nothing."""
        self._complete.set()
        self._finished_reading.set()

    async def wait_until_read(self) -> None:
        await self._finished_reading.wait()

    @property
    def complete(self) -> bool:
        return self._complete.is_set()

    def __aiter__(self) -> StreamingBody:
        return self

    async def __anext__(self) -> bytes:
        if (
            self.limit is not None
            and self.expected_length is not None
            and self.expected_length > self.limit
        ):
            raise RequestEntityTooLarge()
        while not self._complete.is_set():
            message = await self._next_message()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self._finish()
                raise ClientDisconnected()
            if message["type"] != "http.request":
                continue
            if not message.get("more_body", False):
                self._finish()
            data = message.get("body", b"")
            if data:
                self.received += len(data)
                if self.limit is not None and self.received > self.limit:
                    raise RequestEntityTooLarge()
                return data
        raise StopAsyncIteration()

    async def _next_message(self) -> ASGIReceiveEvent:
        await self._attached.wait()
        assert self._receive is not None
        self._idle.begin()
        try:
            return await self._receive()
        except asyncio.CancelledError:
            fired = self._idle.fired
            if fired is None:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self._finish()
            if fired == "slow":
                raise UploadTooSlow(min_rate_bytes=int(self._idle.min_rate)) from None
            raise RequestTimeout() from None
        finally:
            self._idle.end()

    def _finish(self) -> None:
        self._complete.set()
        self._finished_reading.set()
        self._idle.close()

    def __await__(self) -> Generator[Any, None, bytes]:
        return self._read_all().__await__()

    async def _read_all(self) -> bytes:
        data = bytearray()
        async for piece in self:
            data += piece
        return bytes(data)

    def append(self, data: bytes) -> None:
        raise RuntimeError("StreamingBody is pulled from receive(); nothing pushes into it")

    def set_result(self, data: bytes) -> None:
        raise RuntimeError("StreamingBody is pulled from receive(); nothing pushes into it")


class StreamingRequest(Request):
    body_class = StreamingBody
    body: StreamingBody


class StreamingHTTPConnection(ASGIHTTPConnection):
    """Hands ``receive`` to the request body and puts an idle timeout on every send."""

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        idle_timeout: float | None = self.app.config["IDLE_TIMEOUT"]
        self._answering = asyncio.Event()

        async def send_with_timeout(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start":
                self._answering.set()
            if len(message.get("body", b"")) < SMALL_SEND_BYTES:  # type: ignore[arg-type]
                # Fits the socket buffers: it cannot stall, so no timer (one per
                # send showed in profiles of many small requests).
                await send(message)
                return
            async with asyncio.timeout(idle_timeout):
                await send(message)

        await super().__call__(receive, send_with_timeout)

    async def handle_messages(self, request: Request, receive: ASGIReceiveCallable) -> None:
        body = request.body
        assert isinstance(body, StreamingBody)
        config = self.app.config
        body.attach(
            receive,
            config["IDLE_TIMEOUT"],
            min_rate=config.get("MIN_UPLOAD_RATE", 0),
            grace=config.get("UPLOAD_RATE_GRACE", 0.0),
        )
        if not _has_body(request):
            body.mark_empty()
        else:
            # The handler reads the body at its own pace; only once it is done, or
            # has started to answer, do we read from the client ourselves.
            await _first_of(body.wait_until_read(), self._answering.wait())
            if body.disconnected:
                # The handler saw the disconnect as an exception and is cleaning
                # up; let it finish rather than cancelling it halfway.
                await _forever()
            if not body.complete:
                await _discard_rest_of_body(receive)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body.disconnected = True  # long responses (event streams) check this
                return


async def _discard_rest_of_body(receive: ASGIReceiveCallable) -> None:
    """Read and drop what the client still sends after an early answer (a 413, say).

    Hypercorn queues at most a few body messages per request and, when the
    response ends, must queue a disconnect too; if nobody takes the body
    messages, that final send never returns and the connection hangs until the
    idle timeout. Draining lets the answer go out, after which Hypercorn closes
    the connection (the request was never read to its end).
    """
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            await _forever()  # the answer is being sent; let the handler finish
        if not message.get("more_body", False):
            return


async def _first_of(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _forever() -> None:
    await asyncio.Event().wait()


def _has_body(request: Request) -> bool:
    """Whether a body may follow, to be read by the handler before we listen for disconnects.

    Without a Content-Length, only the method can tell: a chunked HTTP/1.1 body,
    HTTP/2 and 3 data frames and test clients all come without one.
    """
    if request.content_length is not None:
        return request.content_length > 0
    return request.method not in _BODYLESS_METHODS


_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})
