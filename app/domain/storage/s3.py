"""Blobs in an S3-compatible object store (``STORAGE_URL=s3://bucket/prefix``).

For several app instances behind one load balancer: they share one Redis and
one bucket. The store only ever sees ciphertext, exactly as the disk does.

Client: aiobotocore, one client (one connection pool) per store. obstore, used
before, put objects faster (bench/s3_clients.py), but its writer has no upload
id, no parts, no abort and no listing of multipart uploads: a discarded upload
could only be completed and then deleted, and one left behind by a killed
instance could never be found. Resumable uploads will need the same parts API
across requests, so one client does all of it.

Writing ``<prefix>/<id>.blob``: a blob smaller than one part (most shares) goes
up as one PutObject at commit, with no multipart upload at all. A bigger one
becomes a multipart upload when its first 8 MiB part is full; at most two parts
upload while the next one fills, so an upload holds about 24 MiB whatever the
file size. Commit completes the upload, and only then is the object visible;
until the share's record is written its upload mark keeps the janitor away.
Discard aborts the upload, never completes it, and deletes the object if the
commit had already been attempted (the record was what failed).

An instance killed mid-upload leaves its multipart upload behind, invisible to
object listings but holding storage. The janitor lists the unfinished uploads
under the prefix and aborts those that Redis knows nothing of once they are
older than an upload mark lives.

Reading: one streamed GetObject, handed out in the batches the caller asks for.

At start-up the bucket is created if it is missing (a fresh ``docker compose up`` has
none, and a signed PUT into a missing bucket is refused with 403); one that exists but
is refused to these credentials stops the service with a message saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from ...config import Settings
from ...errors import ResumableUnsupported
from . import (
    BLOB_SUFFIX,
    INLINE_IO_BYTES,
    NAME_PATTERN,
    ResumableSink,
    StoredBlob,
    StoreFacts,
    StoreSetupError,
    StoreUnreachable,
    UnfinishedUpload,
)

if TYPE_CHECKING:
    from aiobotocore.response import StreamingBody
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.literals import BucketLocationConstraintType
    from types_aiobotocore_s3.type_defs import ListMultipartUploadsRequestTypeDef

log = logging.getLogger(__name__)
T = TypeVar("T")
# Multipart parts of 8 MiB (S3's minimum is 5 MiB), two in flight: about 24 MiB of
# buffers per upload at most, whatever the file size.
PART_BYTES = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 2
# S3's largest page of ListMultipartUploads.
UPLOADS_PAGE = 1000
# A download holds its connection for as long as its client takes to read it, so the
# pool must not be botocore's 10: the eleventh transfer of a worker would wait.
MAX_CONNECTIONS = 1000
HEALTH_SECONDS = 3.0
# A worker's own look at the bucket: the serve master has waited for the store already,
# and botocore's retries against a store that is down would hold up every worker start.
PREPARE_SECONDS = HEALTH_SECONDS
# S3's region without a location constraint: creating a bucket anywhere else names it.
DEFAULT_REGION = "us-east-1"


class S3Sink:
    """One blob being written: a PutObject at commit, or a multipart upload."""

    def __init__(self, client: S3Client, bucket: str, key: str, share_id: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._share_id = share_id
        # Grown as data arrives, so an idle or small upload costs little.
        self._part = bytearray()
        self._upload_id: str | None = None
        self._parts_started = 0
        self._etags: dict[int, str] = {}
        self._uploading: set[asyncio.Task[None]] = set()
        self._commit_tried = False

    async def write(self, *pieces: bytes | bytearray | memoryview) -> None:
        for piece in pieces:
            view = memoryview(piece)
            while view:
                room = PART_BYTES - len(self._part)
                # Copied: the caller reuses its buffers as soon as this returns.
                self._part += view[:room]
                view = view[room:]
                if len(self._part) == PART_BYTES:
                    await self._send_part()

    async def _send_part(self) -> None:
        await self._wait_for_room(PARTS_IN_FLIGHT - 1)
        if self._upload_id is None:
            started = await self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = started["UploadId"]
        self._parts_started += 1
        body, self._part = self._part, bytearray()
        task = asyncio.create_task(self._upload_part(self._parts_started, body), name="s3-part")
        self._uploading.add(task)

    async def _upload_part(self, number: int, body: bytearray) -> None:
        assert self._upload_id is not None
        answer = await self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=_as_body(body),
        )
        self._etags[number] = answer["ETag"]

    async def _wait_for_room(self, most_in_flight: int) -> None:
        """Wait until at most this many parts are uploading; re-raise a failed part's error.

        A cancelled wait leaves the parts uploading: discard waits for them."""
        while len(self._uploading) > most_in_flight:
            done, _ = await asyncio.wait(self._uploading, return_when=asyncio.FIRST_COMPLETED)
            self._uploading -= done
            failures = [task.exception() for task in done]  # each retrieved, none lost
            for failure in failures:
                if failure is not None:
                    raise failure

    async def commit(self) -> None:
        self._commit_tried = True
        if self._upload_id is None:
            body, self._part = self._part, bytearray()
            await self._client.put_object(Bucket=self._bucket, Key=self._key, Body=_as_body(body))
            return
        if self._part:
            await self._send_part()  # the last part may be of any size
        await self._wait_for_room(0)
        await self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": number, "ETag": etag}
                    for number, etag in sorted(self._etags.items())
                ]
            },
        )

    async def discard(self) -> None:
        """Abort, never complete. Failures are logged: the janitor removes what is left."""
        self._part = bytearray()
        # Parts still uploading land first; an abort before they do could leave them.
        while self._uploading:
            with contextlib.suppress(Exception):
                await self._wait_for_room(0)
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            try:
                await self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=upload_id
                )
            except Exception as error:
                if _error_code(error) != "NoSuchUpload":  # already completed or aborted
                    log.warning(
                        "could not abort the upload of %s: %s",
                        self._share_id[:8],
                        type(error).__name__,
                    )
        if self._commit_tried:
            try:
                await self._client.delete_object(Bucket=self._bucket, Key=self._key)
            except Exception as error:
                log.warning(
                    "could not delete the blob of %s: %s", self._share_id[:8], type(error).__name__
                )


class S3Source:
    """An object being read: one streamed GetObject."""

    def __init__(self, size: int, body: StreamingBody) -> None:
        self.size = size
        self._body = body
        self._buffer = bytearray()

    async def process(self, count: int, transform: Callable[[memoryview], T]) -> T:
        if len(self._buffer) < count:
            # Replaced, never resized: a transform may still hold a view of the old one.
            self._buffer = bytearray(count)
        view = memoryview(self._buffer)[:count]
        filled = 0
        while filled < count:
            chunk = await self._body.read(count - filled)
            if not chunk:
                break
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        if filled > INLINE_IO_BYTES:
            return await asyncio.to_thread(transform, view[:filled])
        return transform(view[:filled])

    def close(self) -> None:
        self._body.close()
        self._buffer = bytearray()


def _as_body(part: bytearray) -> bytes:
    """botocore and aiohttp send a bytearray as they send bytes (the stubs name only
    bytes): no second 8 MiB copy per part."""
    return cast(bytes, part)


def _error_code(error: BaseException) -> str | None:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code"))
    return None


class S3BlobStore:
    kind = "S3"
    # Resumable uploads (tus) keep their parts on the local disk only, for now: an S3
    # multipart upload open across requests is not written yet.
    resumable = False

    def __init__(
        self,
        url: str,
        *,
        endpoint: str | None,
        access_key: str | None,
        secret_key: str | None,
        region: str,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError("expected s3://bucket/prefix")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self._key_prefix = f"{self.prefix}/" if self.prefix else ""
        self._endpoint = endpoint or None
        self.region = region
        # Without keys here, botocore's usual sources apply (AWS_* variables, profiles).
        self._credentials = (access_key, secret_key) if access_key and secret_key else None
        self._config = AioConfig(
            region_name=region,
            max_pool_connections=MAX_CONNECTIONS,
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            # Every chunk is authenticated by the blob format itself: S3's checksums and
            # SigV4's SHA-256 of each payload would only add CPU on the event loop.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={
                "payload_signing_enabled": False,
                # Custom endpoints (SeaweedFS, MinIO) are addressed by path, not host name.
                "addressing_style": "path" if endpoint else "auto",
            },
        )
        self._client: S3Client | None = None
        self._client_exit = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        """The store ``STORAGE_URL`` and the ``OTS_S3_*`` settings describe."""
        assert settings.storage_url is not None
        return cls(
            settings.storage_url,
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            region=settings.s3_region,
        )

    def key(self, share_id: str) -> str:
        return f"{self._key_prefix}{share_id}{BLOB_SUFFIX}"

    async def client(self) -> S3Client:
        """The store's one client, created on first use (it needs a running loop)."""
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    access_key, secret_key = self._credentials or (None, None)
                    self._client = await self._client_exit.enter_async_context(
                        get_session().create_client(
                            "s3",
                            endpoint_url=self._endpoint,
                            aws_access_key_id=access_key,
                            aws_secret_access_key=secret_key,
                            config=self._config,
                        )
                    )
        return self._client

    @property
    def where(self) -> str:
        return self._endpoint or f"AWS S3 ({self.region})"

    async def prepare(self) -> None:
        """Create the bucket if it is missing. An unreachable store is only logged here:
        ``/healthz`` reports it, and ``onetimeshare serve`` waited for the store (and
        created the bucket) before starting any worker."""
        try:
            async with asyncio.timeout(PREPARE_SECONDS):
                await self.ensure_bucket()
        except TimeoutError:
            log.warning("the object store at %s does not answer (timed out)", self.where)
        except StoreUnreachable as error:
            log.warning("%s", error)

    async def ensure_bucket(self) -> bool:
        """The bucket exists afterwards; True if this call created it.

        Raises ``StoreUnreachable``, or ``StoreSetupError`` for a bucket these
        credentials may not use or create."""
        if await self.bucket_exists():
            return False
        return await self._create_bucket()

    async def bucket_exists(self) -> bool:
        """True if the bucket is there and ours to use, False if there is no such bucket."""
        try:
            await (await self.client()).head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _error_code(error) in {"404", "NoSuchBucket"}:
                return False
            if _error_code(error) in {"403", "AccessDenied"}:
                # Stores answer 403 to credentials that may not see the bucket, whether
                # it exists or not.
                raise StoreSetupError(
                    f"access to the bucket {self.bucket} at {self.where} is denied: it "
                    "belongs to another account, or these credentials (OTS_S3_ACCESS_KEY) "
                    "may not use it (nor create it, if it is missing)"
                ) from None
            raise self._refused(error) from None
        except Exception as error:
            raise self._failed(error) from None
        return True

    async def _create_bucket(self) -> bool:
        client = await self.client()
        try:
            if self.region == DEFAULT_REGION:
                await client.create_bucket(Bucket=self.bucket)
            else:
                await client.create_bucket(
                    Bucket=self.bucket,
                    # AWS's names, or whatever another S3-compatible store calls its regions.
                    CreateBucketConfiguration={
                        "LocationConstraint": cast("BucketLocationConstraintType", self.region)
                    },
                )
        except ClientError as error:
            code = _error_code(error)
            if code == "BucketAlreadyOwnedByYou":  # another instance was quicker
                return False
            # Another instance was quicker, or (bucket names are global on AWS) the
            # name is another account's, and then it is refused to us.
            if code == "BucketAlreadyExists" and await self.bucket_exists():
                return False
            if code in {"403", "AccessDenied"}:
                raise StoreSetupError(
                    f"the bucket {self.bucket} does not exist at {self.where} and these "
                    "credentials may not create it: create it, or allow s3:CreateBucket"
                ) from None
            raise self._refused(error) from None
        except Exception as error:
            raise self._failed(error) from None
        log.warning("created the bucket %s at %s: it did not exist", self.bucket, self.where)
        return True

    def _refused(self, error: ClientError) -> StoreSetupError:
        details = error.response.get("Error", {})
        return StoreSetupError(
            f"the object store at {self.where} refused the bucket {self.bucket}: "
            f"{details.get('Code')} {details.get('Message') or ''}".rstrip()
        )

    def _failed(self, error: Exception) -> StoreSetupError:
        if isinstance(error, NoCredentialsError):
            return StoreSetupError(
                "no S3 credentials: set OTS_S3_ACCESS_KEY and OTS_S3_SECRET_KEY "
                "(or the AWS_* variables)"
            )
        if isinstance(error, BotoConnectionError | HTTPClientError | OSError | TimeoutError):
            return StoreUnreachable(
                f"the object store at {self.where} does not answer ({type(error).__name__})"
            )
        if isinstance(error, BotoCoreError):
            return StoreSetupError(f"the object store at {self.where}: {error}")
        return StoreUnreachable(
            f"the object store at {self.where} does not answer ({type(error).__name__})"
        )

    async def close(self) -> None:
        self._client = None
        exit_stack, self._client_exit = self._client_exit, contextlib.AsyncExitStack()
        await exit_stack.aclose()

    def check_room(self, incoming_bytes: int) -> None:
        """Object stores report no free space; quotas show up as failed writes."""

    async def resume(self, share_id: str, stored_bytes: int, expected_bytes: int) -> ResumableSink:
        raise ResumableUnsupported()

    async def start(self, share_id: str, expected_bytes: int | None) -> S3Sink:
        return S3Sink(await self.client(), self.bucket, self.key(share_id), share_id)

    async def open(self, share_id: str) -> S3Source:
        client = await self.client()
        try:
            answer = await client.get_object(Bucket=self.bucket, Key=self.key(share_id))
        except ClientError as error:
            # Only a missing object is a lost blob; a missing bucket, refused
            # credentials or an outage must not end shares as lost.
            if _error_code(error) == "NoSuchKey":
                raise FileNotFoundError(self.key(share_id)) from None
            raise
        return S3Source(answer["ContentLength"], answer["Body"])

    async def delete(self, share_id: str, size: int | None = None) -> None:
        await self._remove(share_id)

    async def list_stored(self) -> list[StoredBlob]:
        client = await self.client()
        found = []
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key_prefix, Delimiter="/"
        )
        async for page in pages:
            for item in page.get("Contents", []):
                key = item.get("Key", "")
                match = NAME_PATTERN.fullmatch(key.removeprefix(self._key_prefix))
                if match and match.group(2) == BLOB_SUFFIX:
                    found.append(StoredBlob(match.group(1), "blob", key))
        return found

    async def delete_stored(self, stored: StoredBlob) -> bool:
        return await self._remove(stored.share_id)

    async def _remove(self, share_id: str) -> bool:
        # S3 answers a delete the same whether or not the object was there; the
        # janitor deletes only what it has just listed.
        client = await self.client()
        await client.delete_object(Bucket=self.bucket, Key=self.key(share_id))
        return True

    async def list_unfinished(self, page_size: int = UPLOADS_PAGE) -> list[UnfinishedUpload]:
        client = await self.client()
        found = []
        request: ListMultipartUploadsRequestTypeDef = {
            "Bucket": self.bucket,
            "Prefix": self._key_prefix,
            "MaxUploads": page_size,
        }
        while True:
            page = await client.list_multipart_uploads(**request)
            for upload in page.get("Uploads", []):
                key, upload_id = upload.get("Key", ""), upload.get("UploadId", "")
                match = NAME_PATTERN.fullmatch(key.removeprefix(self._key_prefix))
                if match and match.group(2) == BLOB_SUFFIX and upload_id:
                    # A store that does not say when it began: old enough for Redis to decide.
                    initiated = upload.get("Initiated")
                    started_at = initiated.timestamp() if initiated else 0.0
                    found.append(UnfinishedUpload(match.group(1), started_at, key, upload_id))
            # The next page starts after the markers the store handed out. SeaweedFS
            # gives only an upload id marker (it lists uploads in id order); AWS both.
            next_key, next_id = page.get("NextKeyMarker"), page.get("NextUploadIdMarker")
            if (
                not page.get("IsTruncated")
                or not (next_key or next_id)
                or (next_key, next_id) == (request.get("KeyMarker"), request.get("UploadIdMarker"))
            ):
                return found
            request = {"Bucket": self.bucket, "Prefix": self._key_prefix, "MaxUploads": page_size}
            if next_key:
                request["KeyMarker"] = next_key
            if next_id:
                request["UploadIdMarker"] = next_id

    async def abort_unfinished(self, unfinished: UnfinishedUpload) -> bool:
        """Abort an unfinished upload; False if it was gone already (completed or aborted)."""
        client = await self.client()
        try:
            await client.abort_multipart_upload(
                Bucket=self.bucket, Key=unfinished.key, UploadId=unfinished.upload_id
            )
        except ClientError as error:
            if _error_code(error) == "NoSuchUpload":
                return False
            raise
        return True

    async def healthy(self) -> bool:
        try:
            # Retries included: a monitor takes a later answer as no answer anyway.
            async with asyncio.timeout(HEALTH_SECONDS):
                await (await self.client()).head_bucket(Bucket=self.bucket)
        except Exception as error:  # unreachable, refused, misconfigured, no such bucket
            log.warning("object store unhealthy: %s", type(error).__name__)
            return False
        return True

    async def facts(self) -> StoreFacts:
        return StoreFacts(self.kind, len(await self.list_stored()), None)
