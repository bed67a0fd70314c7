"""Client keys: one per client network, a keyed hash that says nothing without SECRET_KEY."""

from __future__ import annotations

import pytest

from onetimeshare.web.clients import ClientKeys, client_network

SECRET = "client-key-test-secret-0123456789abcdef"


@pytest.mark.parametrize(
    ("address", "prefix", "network"),
    [
        ("192.0.2.1", 64, "192.0.2.1"),
        (" 192.0.2.1 ", 64, "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:3:4:5:6", 56, "2001:db8:1::/56"),
        ("2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6/128"),
        ("fe80::1%eth0", 64, "fe80::/64"),
        ("::ffff:192.0.2.1", 64, "192.0.2.1"),
        ("::ffff:c000:201", 64, "192.0.2.1"),
        ("::1", 64, "::/64"),
        ("unknown", 64, "unknown"),
    ],
)
def test_client_network(address: str, prefix: int, network: str) -> None:
    assert client_network(address, prefix) == network


def test_keys_are_keyed_hashes_of_the_network() -> None:
    keys = ClientKeys(SECRET, 64)
    key = keys.key_of("2001:db8:1:2::1")
    assert key == keys.key_of("2001:db8:1:2:ffff::1")
    assert key != keys.key_of("2001:db8:1:3::1")
    assert keys.key_of("::ffff:192.0.2.1") == keys.key_of("192.0.2.1")
    assert len(key) == 32 and int(key, 16) >= 0
    # Without the secret the key cannot be recomputed from a guessed address.
    assert ClientKeys(SECRET + "!", 64).key_of("2001:db8:1:2::1") != key
