"""Absolute links to shares, to their revoke pages and to resumable uploads."""

from __future__ import annotations

from quart import request

from .extension import services


def _base() -> str:
    # OTS_PUBLIC_URL wins when set, so a spoofed Host header cannot make the
    # service hand out links to somebody else's domain.
    return services().settings.public_url or request.host_url.rstrip("/")


def share_url(token: str) -> str:
    """The link to hand to the recipient."""
    return f"{_base()}/d/{token}"


def revoke_url(revoke_token: str) -> str:
    """The uploader's private link to destroy the share early."""
    return f"{_base()}/r/{revoke_token}"


def resumable_upload_url(secret: str) -> str:
    """A resumable upload's address (tus ``Location``); it carries the upload's secret."""
    return f"{_base()}/tus/{secret}"
