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
