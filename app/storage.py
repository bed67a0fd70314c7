"""Blob files on local disk: ``<id>.part`` while uploading, ``<id>.blob`` once complete.

Only ciphertext is ever written here. Blocking file calls are made from worker
threads by the callers that stream (see ``shares``); the small calls here are
quick metadata operations.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import StorageFull

PART_SUFFIX = ".part"
BLOB_SUFFIX = ".blob"
DISK_FULL_MESSAGE = (
    "The server is low on disk space and cannot take this file now. "
    "Try again later or send a smaller file."
)
_NAME_PATTERN = re.compile(r"([0-9a-f]{32})(\.part|\.blob)")


@dataclass(frozen=True, slots=True)
class StoredFile:
    share_id: str
    state: Literal["part", "blob"]
    path: Path


class BlobWriter:
    """A ``.part`` file being written; ``commit`` renames it into place.

    ``write`` is blocking and meant to run in a worker thread.
    """

    def __init__(self, store: LocalBlobStore, share_id: str) -> None:
        self._store = store
        self.share_id = share_id
        self.part_path = store.part_path(share_id)
        self._descriptor: int | None = os.open(
            self.part_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
        )
        self.bytes_written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self._descriptor is not None
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._descriptor, view)
            except OSError as error:
                # Out of space, over a quota or over the file size limit: all mean
                # there is no room for this file now.
                if error.errno in {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}:
                    raise StorageFull(DISK_FULL_MESSAGE) from None
                raise
            view = view[written:]
            self.bytes_written += written

    def commit(self) -> None:
        """Close and rename into place; after this the blob is visible as complete."""
        assert self._descriptor is not None
        os.close(self._descriptor)
        self._descriptor = None
        os.replace(self.part_path, self._store.blob_path(self.share_id))

    def discard(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
        with contextlib.suppress(FileNotFoundError):
            self.part_path.unlink()


class BlobReader:
    """An open blob. The descriptor stays valid even after the file is unlinked."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.size = os.fstat(self._file.fileno()).st_size

    def read_into(self, buffer: bytearray | memoryview) -> int:
        """Fill the buffer as far as the file allows; blocking, for a worker thread."""
        view = memoryview(buffer)
        filled = 0
        while filled < len(view):
            count = self._file.readinto(view[filled:])
            if not count:
                break
            filled += count
        return filled

    def close(self) -> None:
        self._file.close()


class LocalBlobStore:
    def __init__(self, directory: Path, min_free_bytes: int) -> None:
        self.directory = directory
        self.min_free_bytes = min_free_bytes

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def part_path(self, share_id: str) -> Path:
        return self.directory / f"{share_id}{PART_SUFFIX}"

    def blob_path(self, share_id: str) -> Path:
        return self.directory / f"{share_id}{BLOB_SUFFIX}"

    def free_bytes(self) -> int:
        stats = os.statvfs(self.directory)
        return stats.f_bavail * stats.f_frsize

    def ensure_room(self, incoming_bytes: int) -> None:
        """Raise ``StorageFull`` if writing this many more bytes would cross the floor."""
        if self.free_bytes() - incoming_bytes < self.min_free_bytes:
            raise StorageFull(DISK_FULL_MESSAGE)

    def start(self, share_id: str) -> BlobWriter:
        return BlobWriter(self, share_id)

    def open(self, share_id: str) -> BlobReader:
        return BlobReader(self.blob_path(share_id))

    def delete(self, share_id: str) -> bool:
        removed = False
        for path in (self.blob_path(share_id), self.part_path(share_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed = True
        return removed

    def delete_file(self, stored: StoredFile) -> bool:
        try:
            stored.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def list_files(self) -> Iterator[StoredFile]:
        with os.scandir(self.directory) as entries:
            for entry in entries:
                match = _NAME_PATTERN.fullmatch(entry.name)
                if match:
                    state: Literal["part", "blob"] = (
                        "part" if match.group(2) == PART_SUFFIX else "blob"
                    )
                    yield StoredFile(match.group(1), state, Path(entry.path))

    def is_writable(self) -> bool:
        return os.access(self.directory, os.W_OK | os.X_OK)
