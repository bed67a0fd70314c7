"""Numbers and times in words, for pages and messages."""

from __future__ import annotations


def human_bytes(count: int) -> str:
    """1536 -> '1.5 KiB'; whole numbers drop the decimal."""
    if count < 1024:
        return f"{count} byte" if count == 1 else f"{count} bytes"
    size = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            text = f"{size:.1f}"
            return f"{text.removesuffix('.0')} {unit}"
    raise AssertionError("unreachable")


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def human_duration(seconds: float) -> str:
    """300 -> '5 minutes', 86400 -> '1 day', 5400 -> '1 hour 30 minutes' (two units at most)."""
    remaining = max(0, int(seconds))
    parts = []
    for name, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count} {name}" if count == 1 else f"{count} {name}s")
        if len(parts) == 2:
            break
    return " ".join(parts) or "0 seconds"


def countdown_words(seconds: float) -> str:
    """Time left as people say it: '4 h 12 min', '3 min 20 s', '45 s'."""
    left = max(0, int(seconds))
    days, rest = divmod(left, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if minutes < 10 else f"{minutes} min"
    return f"{secs} s"


def refresh_after(seconds: float) -> int:
    """How soon a countdown should refresh: finer as the end nears, never past the end."""
    left = max(0, int(seconds))
    if left > 86400:
        step = 600
    elif left > 3600:
        step = 60
    elif left > 600:
        step = 15
    elif left > 60:
        step = 5
    else:
        step = 1
    return max(1, min(step, left + 1))
