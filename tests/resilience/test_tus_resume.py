"""Resumable uploads over a network that drops: a standard tus client (tuspy) against
the real server, through a proxy that resets connections mid-PATCH."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
from tusclient.client import TusClient

from tests.cutting_proxy import CuttingProxy
from tests.helpers import BROWSER, JSON, LiveServerFactory, files_in

MIB = 1024 * 1024


def random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as file:
        left = size
        while left:
            piece = os.urandom(min(left, 4 * MIB))
            digest.update(piece)
            file.write(piece)
            left -= len(piece)
    return digest.hexdigest()


def test_tuspy_resumes_a_200_mib_upload_cut_three_times_mid_patch(
    live_server_factory: LiveServerFactory, tmp_path: Path
) -> None:
    size = 200 * MIB
    server = live_server_factory(workers=2, max_upload_bytes=256 * MIB)
    source = tmp_path / "big.bin"
    expected = random_file(source, size)
    cuts = [30 * MIB, 95 * MIB, 170 * MIB]

    with CuttingProxy(server.port, cut_after=cuts) as proxy:
        uploader = TusClient(f"{proxy.url}/tus/").uploader(
            file_path=str(source),
            chunk_size=16 * MIB,
            metadata={"filename": "big.bin", "filetype": "application/octet-stream"},
            retries=10,
            retry_delay=0.05,
        )
        uploader.upload()
        # Every cut happened mid-request, and the client went on from the server's offset.
        assert proxy.cuts == len(cuts)
        assert uploader.url is not None
        links = httpx.get(uploader.url, headers=JSON, timeout=30)
    assert links.status_code == 200, links.text
    answer = links.json()
    assert answer["size"] == size

    token = answer["url"].rsplit("/d/", 1)[1]
    digest = hashlib.sha256()
    with httpx.stream("POST", f"{server.base_url}/d/{token}", headers=BROWSER, timeout=60) as got:
        assert got.status_code == 200
        for piece in got.iter_bytes():
            digest.update(piece)
    assert digest.hexdigest() == expected
    # Downloaded once: nothing of it stays on the disk.
    assert files_in(server.settings.blob_dir) == []


def test_a_second_instance_continues_what_the_first_began(
    live_server_factory: LiveServerFactory, tmp_path: Path
) -> None:
    first = live_server_factory(workers=1, max_upload_bytes=64 * MIB)
    second = live_server_factory(workers=1, max_upload_bytes=64 * MIB)  # same disk, same Redis
    size = 20 * MIB + 12345
    source = tmp_path / "half.bin"
    expected = random_file(source, size)
    started = TusClient(f"{first.base_url}/tus/").uploader(
        file_path=str(source), chunk_size=4 * MIB, metadata={"filename": "half.bin"}
    )
    started.upload(stop_at=8 * MIB)
    assert started.url is not None
    secret = started.url.rsplit("/tus/", 1)[1]
    head = httpx.head(f"{second.base_url}/tus/{secret}", headers={"Tus-Resumable": "1.0.0"})
    assert head.headers["Upload-Offset"] == str(8 * MIB)

    finished = TusClient(f"{second.base_url}/tus/").uploader(
        file_path=str(source), chunk_size=4 * MIB, url=f"{second.base_url}/tus/{secret}"
    )
    finished.upload()
    answer = httpx.get(f"{second.base_url}/tus/{secret}", headers=JSON).json()
    token = answer["url"].rsplit("/d/", 1)[1]
    got = httpx.post(f"{first.base_url}/d/{token}", headers=BROWSER, timeout=60)
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == expected
