"""Deletes blob files that no live share or running upload refers to.

Expiry itself is Redis's job (the record's TTL takes the key material with it);
the janitor only reclaims the disk space of ciphertext nobody can open any
more, plus ``.part`` files of uploads that died. It runs once at start-up and
then every ``janitor_interval`` seconds, one process at a time across all
workers and instances (a Redis lock).

It never deletes a live share's blob: a file is removed only when Redis,
asked in one command, knows neither a share record nor an upload mark for its
id. (An earlier implementation of this design deleted every file at start-up.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass

from . import logs, metrics
from .metadata import MetadataStore
from .storage import BlobStore, StoredBlob

log = logging.getLogger(__name__)

LOOKUP_BATCH = 500
LOCK_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class JanitorReport:
    finished_at: float
    files_seen: int
    blobs_removed: int
    parts_removed: int
    expired_recorded: int


class Janitor:
    def __init__(self, metadata: MetadataStore, blobs: BlobStore, interval: float) -> None:
        self.metadata = metadata
        self.blobs = blobs
        self.interval = interval
        self._stopping = False
        # Set once the start-up pass has run (or failed), for tests and readiness.
        self.started = asyncio.Event()

    async def run_once(self) -> JanitorReport | None:
        """One sweep; None if another process holds the janitor lock."""
        owner = await self.metadata.acquire_lock("janitor", LOCK_SECONDS)
        if owner is None:
            return None
        try:
            report = await self._sweep()
            await self.metadata.record_janitor_run(asdict(report))
            metrics.JANITOR_RUNS.inc()
        finally:
            await self.metadata.release_lock("janitor", owner)
        if report.blobs_removed or report.parts_removed or report.expired_recorded:
            logs.event(
                "janitor",
                blobs_removed=report.blobs_removed,
                parts_removed=report.parts_removed,
                expired=report.expired_recorded,
            )
        return report

    async def _sweep(self) -> JanitorReport:
        # First the records whose TTL ran out: counted as expired and unindexed, so
        # their blobs below are orphans like any other.
        expired = await self.metadata.sweep_expired()
        files = await self.blobs.list_stored()
        orphans: list[StoredBlob] = []
        for start in range(0, len(files), LOOKUP_BATCH):
            batch = files[start : start + LOOKUP_BATCH]
            referenced = await self.metadata.referenced([stored.share_id for stored in batch])
            orphans.extend(stored for stored in batch if stored.share_id not in referenced)
        removed = [stored for stored in orphans if await self.blobs.delete_stored(stored)]
        return JanitorReport(
            finished_at=time.time(),
            files_seen=len(files),
            blobs_removed=sum(stored.state == "blob" for stored in removed),
            parts_removed=sum(stored.state == "part" for stored in removed),
            expired_recorded=expired,
        )

    async def run_forever(self) -> None:
        self._stopping = False
        while not self._stopping:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("janitor pass failed; trying again in %.0f s", self.interval)
            self.started.set()
            if not self._stopping:
                await asyncio.sleep(self.interval)

    def stop(self, task: asyncio.Task[None]) -> None:
        # The flag as well as the cancel: on Python 3.11, asyncio.wait_for (used
        # inside redis-py) swallows a cancel that lands as its inner call finishes.
        self._stopping = True
        task.cancel()
