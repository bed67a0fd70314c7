"""Jinja filters: sizes, durations and times in words."""

from __future__ import annotations

from datetime import UTC, datetime

from quart import Quart

from ..formatting import human_bytes, human_duration


def utc_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def install(app: Quart) -> None:
    app.jinja_env.filters.update(
        bytes=human_bytes, duration=human_duration, utctime=utc_time, isotime=iso_time
    )
