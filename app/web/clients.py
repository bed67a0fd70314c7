"""Who a request comes from, as the gateway counts it: one keyed hash per client network.

Everything kept per client (rate limits, upload requests in flight) is keyed by
``client_key()``, never by the address itself:

* An IPv6 client is counted by its network (the first ``OTS_RATE_IPV6_PREFIX``
  bits, a /64 by default): one subscriber gets a whole /64 and can rotate
  through it at will. An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, seen
  when the server is bound to ``[::]``) is counted as the IPv4 address.
* The key is HMAC-SHA256 of that network under a key derived from SECRET_KEY,
  truncated to 128 bits: someone who reads Redis learns neither the addresses
  nor, without SECRET_KEY, whether a given address was here.

The address itself is the connection's peer, or the one ``ProxyHeaders``
(app/web/proxy.py) took from a trusted proxy's X-Forwarded-For.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from quart import Quart, current_app, g, request

EXTENSION_KEY = "onetimeshare.clients"
KEY_BYTES = 16  # 128 bits: no collisions between clients in practice, short keys
_DERIVATION_LABEL = b"onetimeshare client key v1"


def client_network(address: str, ipv6_prefix: int) -> str:
    """The part of an address that identifies a client: '2001:db8:1:2::7' -> '2001:db8:1:2::/64'.

    Whatever does not parse as an IP address (a unix socket's peer, say) is kept
    as it is: every such request then shares one budget, which is the safe side.
    """
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        # int() drops a zone id ("fe80::1%eth0"), which names our interface, not the client.
        network = ipaddress.IPv6Network((int(ip), ipv6_prefix), strict=False)
        return str(network)
    return str(ip)


class ClientKeys:
    """Turns addresses into client keys; one per app, built from the settings."""

    def __init__(self, secret_key: str, ipv6_prefix: int) -> None:
        # A key of its own, so a hash here can never stand in for a session signature.
        self._key = hmac.digest(secret_key.encode(), _DERIVATION_LABEL, hashlib.sha256)
        self.ipv6_prefix = ipv6_prefix

    def key_of(self, address: str) -> str:
        network = client_network(address, self.ipv6_prefix)
        digest = hmac.digest(self._key, network.encode(), hashlib.sha256)
        return digest[:KEY_BYTES].hex()


def install(app: Quart, secret_key: str, ipv6_prefix: int) -> None:
    app.extensions[EXTENSION_KEY] = ClientKeys(secret_key, ipv6_prefix)


def client_key() -> str:
    """The key of the client making the current request (computed once per request)."""
    key: str | None = g.get("_ots_client_key")
    if key is None:
        keys: ClientKeys = current_app.extensions[EXTENSION_KEY]
        key = keys.key_of(request.remote_addr or "unknown")
        g._ots_client_key = key
    return key
