"""S3 clients on a local SeaweedFS: put and get of one object, MB/s.

``store`` is the app's own S3BlobStore (aiobotocore, 8 MiB parts, two in flight,
reads in 1 MiB batches); ``aiobotocore`` the same client driven by hand, one part
at a time; ``obstore`` the client the store used before, measured only when it is
installed (``pip install obstore``; it is no longer a dependency).

    python -m bench.s3_clients [--mib 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from onetimeshare.domain.storage.s3 import S3BlobStore
from tests.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS

PART = 8 * 1024 * 1024
BATCH = 1024 * 1024


async def with_store(endpoint: str, bucket: str, data: bytes) -> tuple[float, float]:
    store = S3BlobStore(
        f"s3://{bucket}/store",
        endpoint=endpoint,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region="us-east-1",
    )
    try:
        started = time.perf_counter()
        sink = await store.start("0" * 32, len(data))
        for offset in range(0, len(data), BATCH):
            await sink.write(data[offset : offset + BATCH])
        await sink.commit()
        put = time.perf_counter() - started
        started = time.perf_counter()
        source = await store.open("0" * 32)
        total = 0
        while size := await source.process(BATCH, len):
            total += size
        source.close()
        assert total == len(data)
        return put, time.perf_counter() - started
    finally:
        await store.close()


async def with_obstore(endpoint: str, bucket: str, data: bytes) -> tuple[float, float]:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=endpoint,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    started = time.perf_counter()
    writer = obstore.open_writer_async(store, "obstore.bin", buffer_size=PART, max_concurrency=2)
    for offset in range(0, len(data), 1024 * 1024):
        await writer.write(data[offset : offset + 1024 * 1024])
    await writer.close()
    put = time.perf_counter() - started
    started = time.perf_counter()
    total = 0
    result = await obstore.get_async(store, "obstore.bin")
    async for chunk in result.stream(min_chunk_size=1024 * 1024):
        total += len(chunk)
    assert total == len(data)
    return put, time.perf_counter() - started


async def with_aiobotocore(endpoint: str, bucket: str, data: bytes) -> tuple[float, float]:
    from aiobotocore.session import get_session

    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        started = time.perf_counter()
        upload = await client.create_multipart_upload(Bucket=bucket, Key="boto.bin")
        parts = []
        for number, offset in enumerate(range(0, len(data), PART), start=1):
            answer = await client.upload_part(
                Bucket=bucket,
                Key="boto.bin",
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=data[offset : offset + PART],
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        await client.complete_multipart_upload(
            Bucket=bucket,
            Key="boto.bin",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts},
        )
        put = time.perf_counter() - started
        started = time.perf_counter()
        answer = await client.get_object(Bucket=bucket, Key="boto.bin")
        total = 0
        async with answer["Body"] as stream:
            while chunk := await stream.read(1024 * 1024):
                total += len(chunk)
        assert total == len(data)
        return put, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    data = os.urandom(arguments.mib * 1024 * 1024)
    with tempfile.TemporaryDirectory(prefix="ots-seaweed-") as scratch:
        server = SeaweedFS(Path(scratch))
        server.start()
        server.create_bucket("bench")
        clients: list[tuple[str, Callable[[str, str, bytes], Awaitable[tuple[float, float]]]]]
        clients = [("store", with_store), ("aiobotocore", with_aiobotocore)]
        if importlib.util.find_spec("obstore") is not None:
            clients.append(("obstore", with_obstore))
        try:
            for name, run in clients:
                puts, gets = [], []
                for _ in range(arguments.repeats + 1):
                    put, get = asyncio.run(run(server.endpoint, "bench", data))
                    puts.append(len(data) / put / 1e6)
                    gets.append(len(data) / get / 1e6)
                print(
                    f"{name:12} put {statistics.median(puts[1:]):7.0f} MB/s   "
                    f"get {statistics.median(gets[1:]):7.0f} MB/s"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
