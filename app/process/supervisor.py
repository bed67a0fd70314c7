"""The serving master: binds the port once, runs every Hypercorn worker as a child
process, and replaces a worker that dies.

Hypercorn's own master (``hypercorn.run.run``) shuts the whole service down as soon
as one worker exits non-zero, and with one worker it serves inside the master itself.
Either way a worker killed by the OOM killer or by a crash in a C extension took the
service down, and with it the embedded Redis the master had started. This master runs
no application code: it only starts workers, waits for them, and starts a new one
(after a short backoff) whenever one exits while the service is not shutting down.
So the embedded Redis it owns lives until the master itself is asked to stop.

SIGTERM or SIGINT (Ctrl-C) sets the event every worker watches: each stops accepting
and lets requests in flight finish for Hypercorn's ``graceful_timeout``. Workers still
running a while after that are killed, then the sockets close and the caller stops the
embedded Redis. A second signal kills the workers at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.synchronize import Event

from hypercorn.asyncio.run import asyncio_worker, uvloop_worker
from hypercorn.config import Config, Sockets

from ..metrics import forget_dead_worker

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A worker that dies right after starting is restarted after 0.1 s, then 0.2, 0.4, ...
# up to 5 s while it keeps dying young; once one has stayed up STABLE_AFTER seconds its
# next death counts as a first one again.
FIRST_RESTART_DELAY = 0.1
MAX_RESTART_DELAY = 5.0
STABLE_AFTER = 30.0
# Beyond the graceful timeout, for the app's own shutdown (janitor, connection pools).
EXIT_MARGIN = 10.0


def serve_worker(config: Config, sockets: Sockets, shutdown_event: Event) -> None:
    """The body of one worker process (spawned: a fresh interpreter)."""
    # Ctrl-C reaches the whole process group; what it means is the master's to decide.
    # The master blocked SIGINT while starting us, so none was lost or acted on so far.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _drain_when_orphaned(shutdown_event)
    worker = uvloop_worker if config.worker_class == "uvloop" else asyncio_worker
    worker(config=config, sockets=sockets, shutdown_event=shutdown_event)


def _drain_when_orphaned(shutdown_event: Event) -> None:
    """Stop gracefully if the master dies (say, SIGKILL): nobody would supervise this
    worker any more, and it would hold the port against the next start."""
    master = multiprocessing.parent_process()
    if master is None:
        return

    def watch() -> None:
        wait([master.sentinel])  # readable once the master is gone
        shutdown_event.set()

    threading.Thread(target=watch, name="master-watch", daemon=True).start()


@dataclass
class _Slot:
    """One of the N worker places; its process is replaced when it dies."""

    number: int
    process: SpawnProcess | None = None
    pid: int = 0
    started: float = 0.0
    next_delay: float = FIRST_RESTART_DELAY
    restart_at: float | None = None
    replaces: int | None = None  # the pid of the worker that died here last


class Supervisor:
    def __init__(self, config: Config, workers: int) -> None:
        self._config = config
        self._context: SpawnContext = multiprocessing.get_context("spawn")
        self._shutdown_event = self._context.Event()
        self._slots = [_Slot(number) for number in range(workers)]
        self._stop_requested = False
        self._kill_requested = False

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; 0 once every worker has stopped."""
        sockets = self._config.create_sockets()
        # The signal handlers only set flags; the byte the interpreter writes to this
        # socket on every signal wakes the wait below, which sleeps on no timer.
        wake, wake_writer = socket.socketpair()
        wake.setblocking(False)
        wake_writer.setblocking(False)
        previous_wakeup = signal.set_wakeup_fd(wake_writer.fileno())
        previous_handlers = {
            number: signal.signal(number, self._on_signal) for number in STOP_SIGNALS
        }
        try:
            for slot in self._slots:
                self._start(slot, sockets)
            self._supervise(sockets, wake)
        finally:
            try:
                self._stop_workers(wake)
            finally:
                for number, handler in previous_handlers.items():
                    signal.signal(number, handler)
                signal.set_wakeup_fd(previous_wakeup)
                wake.close()
                wake_writer.close()
                for bound in (*sockets.secure_sockets, *sockets.insecure_sockets):
                    bound.close()
        return 0

    def _on_signal(self, number: int, frame: object) -> None:
        # Runs between two bytecodes of the main loop: set flags, nothing that locks.
        if self._stop_requested:
            self._kill_requested = True
        self._stop_requested = True

    def _supervise(self, sockets: Sockets, wake: socket.socket) -> None:
        while not self._stop_requested:
            pending = [slot.restart_at for slot in self._slots if slot.restart_at is not None]
            timeout = max(0.0, min(pending) - time.monotonic()) if pending else None
            wait([wake, *self._sentinels()], timeout)
            _empty(wake)
            if self._stop_requested:
                return
            self._reap_dead()
            now = time.monotonic()
            for slot in self._slots:
                if slot.restart_at is not None and slot.restart_at <= now:
                    self._restart(slot, sockets)

    def _restart(self, slot: _Slot, sockets: Sockets) -> None:
        """Start a replacement; if even that fails (no memory, no processes left: the very
        conditions that kill workers), try again later instead of giving up the service."""
        try:
            self._start(slot, sockets)
        except OSError as error:
            delay = slot.next_delay
            slot.next_delay = min(delay * 2, MAX_RESTART_DELAY)
            slot.restart_at = time.monotonic() + delay
            log.error(
                "could not start a worker (%s); trying again in %.1f s",
                type(error).__name__,
                delay,
                extra={"restart_in_s": delay},
            )

    def _start(self, slot: _Slot, sockets: Sockets) -> None:
        process = self._context.Process(
            target=serve_worker,
            kwargs={
                "config": self._config,
                "sockets": sockets,
                "shutdown_event": self._shutdown_event,
            },
            name=f"onetimeshare-worker-{slot.number}",
        )
        # A new process starts with the signal mask of its parent: blocked here, SIGINT
        # stays pending in the child until serve_worker ignores it, and in the master
        # it is delivered right after.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        assert process.pid is not None  # set by start()
        slot.process, slot.pid = process, process.pid
        slot.started, slot.restart_at = time.monotonic(), None
        if slot.replaces is not None:
            log.info(
                "worker %d started in place of %d",
                slot.pid,
                slot.replaces,
                extra={"worker_pid": slot.pid, "replaces_pid": slot.replaces},
            )

    def _reap_dead(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            process = slot.process
            if process is None or process.exitcode is None:
                continue
            pid, code = slot.pid, process.exitcode
            process.close()
            slot.process = None
            forget_dead_worker(pid)
            if now - slot.started >= STABLE_AFTER:
                slot.next_delay = FIRST_RESTART_DELAY
            delay = slot.next_delay
            slot.next_delay = min(delay * 2, MAX_RESTART_DELAY)
            slot.restart_at, slot.replaces = now + delay, pid
            log.error(
                "worker %d died (%s); starting a new one in %.1f s",
                pid,
                _describe_exit(code),
                delay,
                extra={
                    "worker_pid": pid,
                    "exit_code": code if code >= 0 else None,
                    "signal": _signal_name(-code) if code < 0 else None,
                    "restart_in_s": delay,
                },
            )

    def _stop_workers(self, wake: socket.socket) -> None:
        self._shutdown_event.set()
        log.info("stopping the workers")
        deadline = time.monotonic() + self._config.graceful_timeout + EXIT_MARGIN
        while self._sentinels() and not self._kill_requested:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait([wake, *self._sentinels()], remaining)
            _empty(wake)
            for slot in self._slots:
                if slot.process is not None and slot.process.exitcode is not None:
                    slot.process.close()
                    slot.process = None
        reason = "asked twice to stop" if self._kill_requested else "did not stop in time"
        for slot in self._slots:
            process, slot.process = slot.process, None
            if process is None:
                continue
            log.warning(
                "worker %d %s; killing it", slot.pid, reason, extra={"worker_pid": slot.pid}
            )
            process.kill()
            process.join()
            process.close()

    def _sentinels(self) -> list[int]:
        return [slot.process.sentinel for slot in self._slots if slot.process is not None]


def _empty(wake: socket.socket) -> None:
    try:
        while wake.recv(64):
            pass
    except BlockingIOError:
        pass


def _describe_exit(code: int) -> str:
    return f"signal {_signal_name(-code)}" if code < 0 else f"exit code {code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal has no name of its own
        return str(number)
