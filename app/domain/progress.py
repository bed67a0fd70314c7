"""Upload progress in Redis, keyed by an upload id the form carries, for the progress fragment.

The browser measures bytes sent itself; this records what only the server
knows (bytes actually received, then securing and storing), so a second tab
or a slow final phase still shows the truth. It holds counts and a phase,
never anything secret. A failure is recorded as its problem's sentence key and values
(as JSON, in ``message``), for the web layer to put into words when it shows it.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast, get_args

import redis.exceptions

from ..errors import Problem, ProblemValue
from .metadata import MetadataStore

log = logging.getLogger(__name__)

Phase = Literal["waiting", "receiving", "securing", "stored", "failed"]
_PHASES = frozenset(get_args(Phase))
FINAL_PHASES: frozenset[str] = frozenset({"stored", "failed"})
UPLOAD_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
PROGRESS_TTL = 15 * 60
# Bytes-received updates are throttled: one Redis write per interval at most.
UPDATE_INTERVAL = 0.25


def new_upload_id() -> str:
    return secrets.token_urlsafe(16)


def valid_upload_id(upload_id: str) -> bool:
    return UPLOAD_ID_PATTERN.fullmatch(upload_id) is not None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an upload failed: its problem's sentence key and the values it shows."""

    key: str
    params: Mapping[str, ProblemValue]


@dataclass(frozen=True, slots=True)
class ProgressView:
    phase: Phase
    received: int
    expected: int | None
    failure: Failure | None = None

    @property
    def final(self) -> bool:
        return self.phase in FINAL_PHASES

    @property
    def percent(self) -> int | None:
        if not self.expected:
            return None
        return min(100, self.received * 100 // self.expected)


async def read_progress(metadata: MetadataStore, upload_id: str) -> ProgressView:
    fields = await metadata.get_progress(upload_id)
    if not fields:
        return ProgressView("waiting", 0, None)
    expected = int(fields["expected"]) if fields.get("expected") else None
    phase = fields.get("phase", "receiving")
    return ProgressView(
        cast(Phase, phase if phase in _PHASES else "receiving"),
        int(fields.get("received", 0)),
        expected,
        _failure(fields.get("message", "")),
    )


def _failure(recorded: str) -> Failure | None:
    """The failure a ``message`` field records; None for none, or for one not understood."""
    try:
        note = json.loads(recorded) if recorded else None
    except ValueError:
        return None
    if not isinstance(note, dict) or not isinstance(note.get("key"), str):
        return None
    params = note.get("params")
    if not isinstance(params, dict):
        return None
    return Failure(note["key"], params)


class ProgressRecorder:
    """Writes one upload's progress; every write is best effort and never fails the upload."""

    def __init__(self, metadata: MetadataStore, upload_id: str, expected: int | None) -> None:
        self._metadata = metadata
        self.upload_id = upload_id
        self._expected = expected
        self._last_update = 0.0

    async def received(self, count: int) -> None:
        now = time.monotonic()
        if now - self._last_update >= UPDATE_INTERVAL:
            self._last_update = now
            await self._write("receiving", received=count)

    async def phase(self, phase: Phase, *, received: int | None = None) -> None:
        await self._write(phase, received=received)

    async def failed(self, problem: Problem) -> None:
        await self._write(
            "failed", message=json.dumps({"key": problem.key, "params": problem.params})
        )

    async def _write(self, phase: Phase, *, received: int | None = None, message: str = "") -> None:
        fields: dict[str, str | int | float] = {"phase": phase, "message": message}
        if received is not None:
            fields["received"] = received
        if self._expected is not None:
            fields["expected"] = self._expected
        try:
            await self._metadata.set_progress(self.upload_id, fields, PROGRESS_TTL)
        except (redis.exceptions.RedisError, OSError):
            log.warning("could not record upload progress")
