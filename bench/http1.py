"""A minimal keep-alive HTTP/1.1 client for load generation.

The load benchmark runs its clients on the same two cores as the server, so
every cycle the client burns is taken from the server. httpx costs several
times more per request than this; correctness is checked by the benchmark
itself (status codes, bytes round-trip, exactly-once).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    def __init__(self, base_url: str, user_agent: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.user_agent = user_agent
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, limit=2**20
        )

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"User-Agent: {self.user_agent}",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        answer_headers = {}
        for line in header_lines:
            if ":" in line:
                name, _, value = line.partition(":")
                answer_headers[name.strip().lower()] = value.strip()
        if "content-length" in answer_headers:
            data = await self._reader.readexactly(int(answer_headers["content-length"]))
        elif answer_headers.get("transfer-encoding") == "chunked":
            data = await self._read_chunked()
        else:
            data = b""
        if answer_headers.get("connection") == "close":
            await self.close()
        return Answer(int(status_line.split(" ", 2)[1]), answer_headers, data)

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        data = bytearray()
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return bytes(data)
            data += await self._reader.readexactly(size)
            await self._reader.readexactly(2)


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = "----bench-boundary-7d2f"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )
