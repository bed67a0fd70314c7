"""Absolute links to shares."""

from __future__ import annotations

from quart import request

from ..services import services


def share_url(token: str) -> str:
    """The link to hand to the recipient.

    ``OTS_PUBLIC_URL`` wins when set, so a spoofed ``Host`` header cannot make
    the service hand out links to somebody else's domain.
    """
    base = services().settings.public_url or request.host_url.rstrip("/")
    return f"{base}/d/{token}"
