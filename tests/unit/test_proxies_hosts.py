"""The pure rules behind TRUSTED_PROXIES and ALLOWED_HOSTS (the wired-up app: test_proxies_and_hosts)."""

from __future__ import annotations

import ipaddress

import pytest

from app.core.hosts import host_allowed, host_of, normalise_pattern
from app.core.proxies import TrustedProxies, parse_address


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7:5123 ", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),  # dual-stack sockets report IPv4 peers like this
        ("unknown", None),
        ("", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]x", None),
        ("fe80::1%eth0", None),
        ("1.2.3.4:5:6", None),
    ],
)
def test_forwarded_addresses(raw, expected):
    parsed = parse_address(raw)
    assert (str(parsed) if parsed else None) == expected


def test_the_client_is_the_rightmost_untrusted_hop():
    proxies = TrustedProxies(["10.0.0.0/8", "2001:db8:1::/48"])
    pick = proxies.client_from
    assert str(pick("1.1.1.1, 203.0.113.7, 10.0.0.2")) == "203.0.113.7"
    assert str(pick("203.0.113.7, 2001:db8:1::5")) == "203.0.113.7"
    assert str(pick("10.0.0.9, 10.0.0.2")) == "10.0.0.9"  # all trusted: an internal caller
    assert str(pick("garbage, 10.0.0.2")) == "10.0.0.2"  # the walk stops at the malformed entry
    assert pick("garbage") is None and pick("") is None
    assert str(pick(",".join(["10.0.0.1"] * 100))) == "10.0.0.1"  # long chains are cut, not walked
    assert proxies.trusts(ipaddress.ip_address("10.255.0.1"))
    assert not proxies.trusts(ipaddress.ip_address("11.0.0.1")) and not proxies.trusts(None)
    assert not TrustedProxies([])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM", "example.com"),
        (".example.com.", ".example.com"),
        ("*", "*"),
        ("[::1]", "::1"),
        ("0:0::1", "::1"),
        ("127.0.0.1", "127.0.0.1"),
    ],
)
def test_allowed_host_patterns(raw, expected):
    assert normalise_pattern(raw) == expected


@pytest.mark.parametrize("raw", ["example.com:8000", "https://example.com", "exa mple.com", "-x.ng", "."])
def test_bad_allowed_host_patterns(raw):
    with pytest.raises(ValueError):
        normalise_pattern(raw)


def test_host_headers():
    assert host_of("Example.com:8000") == "example.com"
    assert host_of("[::1]:8000") == "::1" and host_of("[0::1]") == "::1"
    assert host_of("example.com:99999999") is None and host_of("a b") is None and host_of("") is None
    patterns = ("topup.ng", ".example.com", "::1")
    assert host_allowed("topup.ng", patterns) and host_allowed("x.y.example.com", patterns)
    assert host_allowed("example.com", patterns) and host_allowed("::1", patterns)
    assert not host_allowed("notexample.com", patterns) and not host_allowed("x.topup.ng", patterns)
    assert not host_allowed("127.0.0.1", patterns)
