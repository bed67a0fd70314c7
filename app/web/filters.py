"""Jinja filters and globals: sizes, durations, times, QR codes, the htmx configuration and
the vendored scripts' integrity values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import segno
from markupsafe import Markup
from quart import Quart

from .. import resources
from .formatting import countdown_words, human_bytes, human_duration, refresh_after

# htmx settings, read by htmx from a <meta> tag (no inline script needed):
# no eval and no inline styles so the CSP stays strict; no history snapshots,
# because pages carry links and secrets; 4xx fragments (wrong password, gone,
# bad form) are swapped in like any answer, 5xx too but reported as errors.
HTMX_CONFIG = {
    "allowEval": False,
    "allowScriptTags": False,
    "includeIndicatorStyles": False,
    "historyRestoreAsHxRequest": False,
    "historyCacheSize": 0,
    "refreshOnHistoryMiss": True,
    "selfRequestsOnly": True,
    # Without "style": settling would set an empty style attribute, which the CSP forbids.
    "attributesToSettle": ["class", "width", "height"],
    "responseHandling": [
        {"code": "204", "swap": False},
        {"code": "[23]..", "swap": True},
        {"code": "4..", "swap": True, "error": False},
        {"code": "5..", "swap": True, "error": True},
    ],
}


def utc_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M")


def qr_svg(text: str) -> Markup:
    """A QR code as inline SVG, drawn on the server: no image request, no script."""
    code = segno.make(text, error="m")
    svg = code.svg_inline(
        scale=4,
        border=2,
        dark="#000",
        light="#fff",
        svgclass="qr",
        title="QR code of the share link",
    )
    return Markup(svg.replace("<svg ", '<svg role="img" ', 1))  # noqa: S704 - segno escapes


def install(app: Quart) -> None:
    app.jinja_env.filters.update(
        bytes=human_bytes,
        duration=human_duration,
        utctime=utc_time,
        isotime=iso_time,
        countdown=countdown_words,
        refresh_after=refresh_after,
        qr_svg=qr_svg,
        clock=clock,
    )
    app.jinja_env.globals["htmx_config"] = HTMX_CONFIG
    app.jinja_env.globals["vendor_integrity"] = vendor_integrity_lookup()


def vendor_integrity_lookup() -> Callable[[str], str]:
    """``vendor_integrity('htmx.min.js')`` in a template: the manifest's SRI value, read once.

    Our scripts are same-origin, so they need no ``crossorigin`` attribute: the W3C SRI spec
    checks same-origin responses as they are ("Is response eligible for integrity
    validation"); ``crossorigin`` is what makes a cross-origin (CDN) response eligible."""
    integrity = {name: entry.integrity for name, entry in resources.vendored().items()}

    def vendor_integrity(name: str) -> str:
        return integrity[name]

    return vendor_integrity
