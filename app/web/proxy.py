"""What a trusted reverse proxy may tell us about a request: the client's address and scheme.

With ``TRUSTED_PROXY_HOPS`` = N, each of the N proxies in front appends the
address it received the request from to X-Forwarded-For, so the Nth value from
the right is the client as the outermost trusted proxy saw it; anything further
left was written by the client and proves nothing. X-Forwarded-Proto is read the
same way.

Hypercorn's ``ProxyFixMiddleware`` does this too, but also replaces the Host
header with X-Forwarded-Host, which a client can send itself when the proxy
does not overwrite it: a forged host then came back in share links. Here
X-Forwarded-Host (and ``Forwarded``) are never read; links are built from
``OTS_PUBLIC_URL``, which the settings require whenever proxies are trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

SCHEMES = frozenset({"http", "https"})


class ProxyHeaders:
    """ASGI middleware: the client address and scheme from ``hops`` trusted proxies."""

    def __init__(self, app: ASGIFramework, hops: int) -> None:
        if hops < 1:
            raise ValueError("ProxyHeaders needs at least one trusted proxy")
        self.app = app
        self.hops = hops

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http" or scope["type"] == "websocket":
            headers = scope["headers"]
            client = _address(_trusted_value(b"x-forwarded-for", headers, self.hops))
            # Proxies append to X-Forwarded-For but usually overwrite X-Forwarded-Proto:
            # with fewer values than hops, the one there was set by a trusted proxy.
            scheme = _trusted_value(b"x-forwarded-proto", headers, self.hops, overwritten=True)
            scheme = scheme.lower() if scheme is not None else None
            if client is not None or scheme in SCHEMES:
                scope = dict(scope)  # type: ignore[assignment]  # the server's own stays as it was
                if client is not None:
                    scope["client"] = (client, 0)
                if scheme in SCHEMES:
                    scope["scheme"] = scheme
        await self.app(scope, receive, send)


def _trusted_value(
    name: bytes, headers: Iterable[tuple[bytes, bytes]], hops: int, *, overwritten: bool = False
) -> str | None:
    """The value the outermost trusted proxy wrote, or None if the proxies wrote too few
    (unless the header is one proxies overwrite: then the oldest value there is theirs)."""
    values: list[str] = []
    for header, value in headers:
        if header.lower() == name:
            values.extend(part.decode("latin-1").strip() for part in value.split(b","))
    if not values or (len(values) < hops and not overwritten):
        return None
    return values[-min(hops, len(values))]


def _address(value: str | None) -> str | None:
    """An IP address from a forwarded value ('192.0.2.1', '192.0.2.1:443', '[2001:db8::1]:443').

    Anything else is ignored, so the request keeps the proxy's own address: a
    garbled header can only make a client share the proxy's budget, never dodge it.
    """
    if not value:
        return None
    candidates = [value]
    if value.startswith("["):
        candidates = [value[1:].partition("]")[0]]
    elif value.count(":") == 1:
        candidates.append(value.partition(":")[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None
