"""The long-lived objects of one app instance, built at start-up: the composition root.

It wires the domain (shares, metadata, blob store, admin access, the statistics reader),
the gateway's upload slots and the background jobs (janitor, loop-lag monitor) together.
No Quart here: the web layer starts and stops it with the app (``web/extension.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from redis.asyncio import BlockingConnectionPool, Redis

from .config import Settings
from .domain.admin_access import AdminAccess
from .domain.metadata import MetadataStore
from .domain.passwords import Argon2Pool
from .domain.resumable import ResumableUploads
from .domain.shares import ShareService
from .domain.stats import StatsReader
from .domain.storage import BlobStore
from .domain.storage.local import LocalBlobStore
from .process.embedded_redis import EmbeddedRedis
from .process.janitor import Janitor
from .process.looplag import LoopLag, monitor
from .version import __version__
from .web.inflight import UploadRequestSlots

log = logging.getLogger(__name__)

# Connections per worker; each request holds one only for a command or script at a time,
# an admin event stream holds one while it waits for events.
REDIS_CONNECTIONS = 256


@dataclass
class Services:
    settings: Settings
    redis: Redis
    metadata: MetadataStore
    blobs: BlobStore
    shares: ShareService
    janitor: Janitor
    admin: AdminAccess
    upload_slots: UploadRequestSlots
    stats: StatsReader
    resumable: ResumableUploads
    embedded_redis: EmbeddedRedis | None = None
    janitor_task: asyncio.Task[None] | None = None
    loop_lag: LoopLag = field(default_factory=LoopLag)
    lag_task: asyncio.Task[None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        embedded = None
        redis_url = settings.redis_url
        if redis_url is None:
            embedded = EmbeddedRedis(settings.embedded_redis_dir)
            await asyncio.to_thread(embedded.ensure_running)
            redis_url = embedded.url
        # A blocking pool: a burst of requests beyond the pool's size waits (up to the
        # Redis timeout) for a connection instead of failing at once with a 503, as
        # redis-py's default pool of 100 did under 100 concurrent password guesses.
        pool = BlockingConnectionPool.from_url(
            redis_url,
            max_connections=REDIS_CONNECTIONS,
            timeout=settings.redis_timeout,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            health_check_interval=30,
        )
        redis = Redis.from_pool(pool)
        metadata = MetadataStore(redis, settings.tombstone_seconds)
        blobs = open_blob_store(settings)
        await blobs.prepare()
        argon2 = Argon2Pool(settings.argon2_max_concurrent)
        shares = ShareService(settings, metadata, blobs, argon2)
        resumable = ResumableUploads(
            metadata,
            blobs,
            argon2,
            settings.argon2,
            max_bytes=settings.max_upload_bytes,
            upload_seconds=settings.resumable_upload_seconds,
            result_seconds=settings.resumable_result_seconds,
        )
        janitor = Janitor(
            metadata,
            blobs,
            settings.janitor_interval,
            upload_mark_seconds=settings.upload_mark_seconds,
        )
        admin = AdminAccess(settings, redis, argon2)
        await admin.prepare()
        upload_slots = UploadRequestSlots(
            redis, settings.uploads_per_client, settings.upload_slot_seconds
        )
        stats = StatsReader(redis, metadata, blobs, __version__)
        services = cls(
            settings,
            redis,
            metadata,
            blobs,
            shares,
            janitor,
            admin,
            upload_slots,
            stats,
            resumable,
            embedded,
        )
        services.janitor_task = asyncio.create_task(janitor.run_forever(), name="janitor")
        services.lag_task = asyncio.create_task(
            monitor(redis, services.loop_lag, services.stopping), name="loop-lag"
        )
        return services

    async def stop(self) -> None:
        self.stopping.set()
        if self.janitor_task is not None:
            self.janitor.stop(self.janitor_task)
            with contextlib.suppress(asyncio.CancelledError):
                await self.janitor_task
        if self.lag_task is not None:
            self.lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.lag_task
        self.shares.argon2.close()
        await self.blobs.close()
        await self.redis.aclose()
        if self.embedded_redis is not None:
            await asyncio.to_thread(self.embedded_redis.stop)


def open_blob_store(settings: Settings) -> BlobStore:
    if settings.storage_url:
        from .domain.storage.s3 import S3BlobStore

        return S3BlobStore.from_settings(settings)
    return LocalBlobStore(settings.blob_dir, settings.min_free_bytes)
