"""Quart's request plumbing, changed for large bodies: pull-based reads and idle timeouts.

Stock Quart reads the whole request body into memory as fast as the client
sends it, whatever the handler is doing, and cuts off any body or response
that takes longer than 60 seconds in total. For multi-gigabyte uploads and
downloads we want the opposite:

* The body is read from ASGI ``receive()`` only when the handler asks for the
  next piece, so the server's own bounded queue pushes back on a fast client
  and memory stays flat.
* Each read and each send must make progress within an idle timeout; a slow
  but steady transfer may take as long as it needs.
* The body size is counted as it arrives, so a chunked body cannot walk past
  the limit the way it walks past ``MAX_CONTENT_LENGTH``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any

from hypercorn.typing import ASGIReceiveCallable, ASGIReceiveEvent, ASGISendCallable, ASGISendEvent
from quart.asgi import ASGIHTTPConnection
from quart.wrappers import Request
from quart.wrappers.request import Body
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge, RequestTimeout

DEFAULT_BODY_LIMIT = 64 * 1024
SMALL_SEND_BYTES = 64 * 1024


class IdleGuard:
    """Cancels a task that waits longer than ``seconds`` for one event.

    A body arrives as tens of thousands of small messages; arming a timer for
    each (``asyncio.timeout``) cost 7 % of an upload's event-loop time. This
    keeps one timer and re-arms it lazily, so each wait costs a clock read.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.fired = False
        self._waiter: asyncio.Task[Any] | None = None
        self._since = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def begin(self) -> None:
        if self.seconds is None:
            return
        loop = asyncio.get_running_loop()
        self._waiter = asyncio.current_task()
        self._since = loop.time()
        if self._handle is None:
            self._handle = loop.call_at(self._since + self.seconds, self._check, loop)

    def end(self) -> None:
        self._waiter = None

    def close(self) -> None:
        self._waiter = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        if self._waiter is None or self.seconds is None:
            return
        due = self._since + self.seconds
        if loop.time() >= due:
            self.fired = True
            self._waiter.cancel()
        else:
            self._handle = loop.call_at(due, self._check, loop)


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

    def attach(self, receive: ASGIReceiveCallable, idle_timeout: float | None) -> None:
        self._receive = receive
        self._idle = IdleGuard(idle_timeout)
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
            if not self._idle.fired:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self._finish()
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
        body.attach(receive, self.app.config["IDLE_TIMEOUT"])
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
