"""Stopping the child processes we start (embedded Redis; in tests and benchmarks, servers)."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Ask the process to exit (SIGTERM) and wait; kill it if it takes longer than ``timeout``.

    SIGTERM first so that Redis flushes its log and a server drains its requests.
    """
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
