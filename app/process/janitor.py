"""Deletes blob files that no live share or running upload refers to.

Expiry itself is Redis's job (the record's TTL takes the key material with it);
the janitor only reclaims the disk space of ciphertext nobody can open any
more, plus ``.part`` files of uploads that died and, in an object store, the
multipart uploads they left unfinished. It runs once at start-up and
then every ``janitor_interval`` seconds, one process at a time across all
workers and instances (a Redis lock).

It never deletes a live share's blob: a file is removed only when Redis,
asked in one command, knows neither a share record nor an upload mark for its
id. (An earlier implementation of this design deleted every file at start-up.)
An unfinished multipart upload must in addition be older than an upload mark
lives: a running upload renews its mark long before that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import TypeVar

from .. import logs, metrics
from ..domain.heartbeat import start_heartbeat
from ..domain.metadata import MetadataStore
from ..domain.storage import BlobStore, StoredBlob, UnfinishedUpload

log = logging.getLogger(__name__)

LOOKUP_BATCH = 500
# The lock is renewed while a pass runs, so it can be short: an instance killed
# mid-pass holds up the others' janitors for this long at most.
LOCK_SECONDS = 10.0
Item = TypeVar("Item", StoredBlob, UnfinishedUpload)


@dataclass(frozen=True, slots=True)
class JanitorReport:
    finished_at: float
    files_seen: int
    blobs_removed: int
    parts_removed: int
    expired_recorded: int
    uploads_aborted: int = 0


class Janitor:
    def __init__(
        self,
        metadata: MetadataStore,
        blobs: BlobStore,
        interval: float,
        *,
        upload_mark_seconds: float,
    ) -> None:
        self.metadata = metadata
        self.blobs = blobs
        self.interval = interval
        self.upload_mark_seconds = upload_mark_seconds
        self._stopping = False
        # Set once the start-up pass has run (or failed), for tests and readiness.
        self.started = asyncio.Event()

    async def run_once(self) -> JanitorReport | None:
        """One sweep; None if another process holds the janitor lock."""
        owner = await self.metadata.acquire_lock("janitor", LOCK_SECONDS)
        if owner is None:
            return None
        heartbeat = start_heartbeat(
            lambda: self.metadata.renew_lock("janitor", owner, LOCK_SECONDS),
            LOCK_SECONDS,
            "the janitor lock",
        )
        try:
            report = await self._sweep()
            await self.metadata.record_janitor_run(asdict(report))
            metrics.JANITOR_RUNS.inc()
        finally:
            heartbeat.cancel()
            await self.metadata.release_lock("janitor", owner)
        if (
            report.blobs_removed
            or report.parts_removed
            or report.expired_recorded
            or report.uploads_aborted
        ):
            logs.event(
                "janitor",
                blobs_removed=report.blobs_removed,
                parts_removed=report.parts_removed,
                expired=report.expired_recorded,
                uploads_aborted=report.uploads_aborted,
            )
        return report

    async def _sweep(self) -> JanitorReport:
        # First the records whose TTL ran out: counted as expired and unindexed, so
        # their blobs below are orphans like any other.
        expired = await self.metadata.sweep_expired()
        files = await self.blobs.list_stored()
        orphans = await self._unreferenced(files)
        removed = [stored for stored in orphans if await self.blobs.delete_stored(stored)]
        # A mark is set before an upload begins and renewed while it runs: one begun
        # longer ago than a mark lives, and unmarked, has no one left to finish it.
        unfinished = await self.blobs.list_unfinished()
        old_enough = time.time() - self.upload_mark_seconds
        abandoned = await self._unreferenced([u for u in unfinished if u.started_at < old_enough])
        aborted = [u for u in abandoned if await self.blobs.abort_unfinished(u)]
        return JanitorReport(
            finished_at=time.time(),
            files_seen=len(files),
            blobs_removed=sum(stored.state == "blob" for stored in removed),
            parts_removed=sum(stored.state == "part" for stored in removed),
            expired_recorded=expired,
            uploads_aborted=len(aborted),
        )

    async def _unreferenced(self, items: list[Item]) -> list[Item]:
        """The items whose share id Redis knows neither a record nor an upload mark for."""
        found: list[Item] = []
        for start in range(0, len(items), LOOKUP_BATCH):
            batch = items[start : start + LOOKUP_BATCH]
            referenced = await self.metadata.referenced([item.share_id for item in batch])
            found.extend(item for item in batch if item.share_id not in referenced)
        return found

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
