"""The bare ceiling: a minimal asyncio HTTP/1.1 server that does nothing but move bytes.

Beside bench/ceiling.py (the product's own Quart + Hypercorn stack doing no work),
this one has no framework and no ASGI at all: an ``asyncio.BufferedProtocol``
reading into one reused 1 MiB buffer, on uvloop when it is installed (as the
product's server uses it). So the ratio of a transfer to this ceiling cannot be
flattered by a change of server: it is what Python on this machine can push
through a socket.

- ``POST /discard``: reads the body (Content-Length or chunked) and throws it away,
  answering ``{"received": n}``; answers ``Expect: 100-continue`` as curl wants.
- ``GET /source/<n>``: sends n bytes from memory in 1 MiB writes, pausing while the
  transport's buffer holds over 4 MiB (flow control), as a real server must.
- ``GET /healthz``: 200, for bench.harness.serve.

Keep-alive, one process, ``$HOST:$PORT``.

    python -m bench.bare_ceiling
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
from typing import cast

PIECE = memoryview(bytes(1024 * 1024))
BUFFER_BYTES = 1024 * 1024
MAX_HEAD = 16 * 1024
SOURCE = re.compile(rb"^/source/(\d+)$")


class BareHTTP(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self.buffer = bytearray(BUFFER_BYTES)
        self.view = memoryview(self.buffer)
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()  # the request head being read
        self.body_left = 0  # bytes of a Content-Length body still to discard
        self.chunked: bytearray | None = None  # what is left to parse of a chunked body
        self.received = 0
        self.sending = 0  # bytes of a /source response still to write
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        # Room for a few pieces before pausing: with the default 64 KiB high-water mark
        # every 1 MiB write pauses and resumes the sender (send ~2.3 -> ~5 GB/s here).
        self.transport.set_write_buffer_limits(high=4 * len(PIECE))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.can_write.set()

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.feed(self.view[:nbytes])

    def feed(self, data: memoryview) -> None:
        while data:
            if self.body_left:
                taken = min(self.body_left, len(data))
                self.body_left -= taken
                self.received += taken
                data = data[taken:]
                if not self.body_left:
                    self.answer_discard()
            elif self.chunked is not None:
                self.chunked += data
                data = memoryview(b"")
                self.parse_chunks()
            else:
                self.head += data
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.head) > MAX_HEAD:
                        self.reply(b"431 Request Header Fields Too Large", b"", close=True)
                    return
                rest = memoryview(bytes(self.head[end + 4 :]))
                head = bytes(self.head[:end])
                self.head = bytearray()
                self.start(head)
                data = rest

    def parse_chunks(self) -> None:
        assert self.chunked is not None
        while True:
            line_end = self.chunked.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(self.chunked[:line_end]).split(b";")[0], 16)
            if size == 0:
                # The last chunk, then (no trailers from our clients) the blank line.
                if len(self.chunked) < line_end + 4:
                    return
                rest = memoryview(bytes(self.chunked[line_end + 4 :]))
                self.chunked = None
                self.answer_discard()
                self.feed(rest)
                return
            if len(self.chunked) < line_end + 2 + size + 2:
                return
            self.received += size
            del self.chunked[: line_end + 2 + size + 2]

    def start(self, head: bytes) -> None:
        request_line, *header_lines = head.split(b"\r\n")
        method, target, _ = request_line.split(b" ", 2)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if method == b"POST" and target == b"/discard":
            self.received = 0
            if headers.get(b"expect") == b"100-continue":
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if headers.get(b"transfer-encoding") == b"chunked":
                self.chunked = bytearray()
            else:
                self.body_left = int(headers.get(b"content-length", b"0"))
                if not self.body_left:
                    self.answer_discard()
            return
        if method == b"GET" and (match := SOURCE.match(target)):
            self.sending = int(match.group(1))
            self.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % self.sending
            )
            asyncio.get_running_loop().create_task(self.send_source())
            return
        if method == b"GET" and target == b"/healthz":
            self.reply(b"200 OK", b'{"status":"ok"}')
            return
        self.reply(b"404 Not Found", b"", close=True)

    async def send_source(self) -> None:
        while self.sending and not self.closed:
            await self.can_write.wait()
            count = min(self.sending, len(PIECE))
            self.write(PIECE[:count])
            self.sending -= count

    def answer_discard(self) -> None:
        self.reply(b"200 OK", b'{"received":%d}' % self.received)

    def reply(self, status: bytes, body: bytes, close: bool = False) -> None:
        self.write(
            b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (status, len(body), b"Connection: close\r\n" if close else b"", body)
        )
        if close and self.transport is not None:
            self.transport.close()

    def write(self, data: bytes | memoryview) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)


async def serve(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(BareHTTP, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8002"))
    if importlib.util.find_spec("uvloop"):
        import uvloop

        uvloop.run(serve(host, port))
    else:
        asyncio.run(serve(host, port))


if __name__ == "__main__":
    main()
