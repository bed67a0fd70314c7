"""A TCP proxy that cuts connections: a flaky network between a client and a live server.

With ``client_bytes_per_second`` it is also a slow one: what clients send is relayed
at most that fast.

Bytes are relayed both ways as they come. Each time the total sent by clients
crosses the next of ``cut_after`` (byte counts), the connection that crossed it is
reset mid-request, as a dropped network would leave it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from types import TracebackType


class CuttingProxy:
    def __init__(
        self,
        target_port: int,
        cut_after: list[int] | None = None,
        client_bytes_per_second: float | None = None,
    ) -> None:
        self._target = ("127.0.0.1", target_port)
        self._cuts_left = sorted(cut_after or [])
        self._rate = client_bytes_per_second
        self._sent = 0
        self._lock = threading.Lock()
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closing = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._closing = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._relay, args=(client, upstream, True), daemon=True).start()
            threading.Thread(
                target=self._relay, args=(upstream, client, False), daemon=True
            ).start()

    def _should_cut(self, count: int) -> bool:
        with self._lock:
            self._sent += count
            if self._cuts_left and self._sent >= self._cuts_left[0]:
                self._cuts_left.pop(0)
                self.cuts += 1
                return True
            return False

    def _relay(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while True:
                data = source.recv(256 * 1024)
                if not data:
                    break
                if from_client and self._should_cut(len(data)):
                    _reset(source)
                    _reset(sink)
                    return
                if from_client and self._rate:
                    time.sleep(len(data) / self._rate)  # the slow link itself
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()


def _reset(connection: socket.socket) -> None:
    """Drop the connection at once: no lingering, and the relay thread blocked reading
    it wakes up (a close alone would leave the socket open under its recv)."""
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.shutdown(socket.SHUT_RDWR)
