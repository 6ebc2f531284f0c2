"""Rate limits' decisions (services/intake/limits.py): who the client is, what is counted, how long to wait."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.intake.limits import (
    KEY_PREFIX,
    checks_for,
    client_address,
    contact_identities,
    gcra,
    network_of,
    networks,
    parse_address,
    retry_after_seconds,
)
from shared.guard_config import EndpointLimits, Limits, Rate

ipv4 = st.ip_addresses(v=4)
ipv6 = st.ip_addresses(v=6).filter(lambda address: address.ipv4_mapped is None)
addresses = st.one_of(ipv4, ipv6)
PROXIES = networks(("10.0.0.0/8", "2001:db8:ff::/48"))


@given(addresses, st.integers(8, 32), st.integers(16, 128))
def test_an_address_is_counted_in_the_network_of_its_prefix_which_contains_it(address, v4, v6):
    network = network_of(address, v4, v6)
    assert address in network
    assert network.prefixlen == (v4 if address.version == 4 else v6)
    # Every address of that network is counted in the same one.
    assert network_of(network[-1], v4, v6) == network == network_of(network[0], v4, v6)


def test_ipv4_is_counted_per_24_and_ipv6_per_64_by_default():
    defaults = Limits()
    assert str(network_of(ipaddress.ip_address("203.0.113.77"), defaults.ipv4_prefix, defaults.ipv6_prefix)) == (
        "203.0.113.0/24"
    )
    address = ipaddress.ip_address("2001:db8:1:2:3:4:5:6")
    assert str(network_of(address, defaults.ipv4_prefix, defaults.ipv6_prefix)) == "2001:db8:1:2::/64"


@given(ipv4)
def test_an_ipv4_mapped_ipv6_peer_is_its_ipv4_address(address):
    assert parse_address(f"::ffff:{address}") == address
    assert parse_address(f" {address} ") == address


@given(addresses, st.lists(st.text(max_size=40), max_size=5))
def test_an_untrusted_peer_is_the_client_whatever_x_forwarded_for_says(peer, forwarded):
    if any(peer in proxy for proxy in PROXIES if proxy.version == peer.version):
        return
    assert client_address(str(peer), forwarded, PROXIES) == peer


@given(st.lists(addresses, min_size=1, max_size=4), st.integers(0, 3))
def test_behind_trusted_proxies_the_client_is_the_rightmost_untrusted_hop(chain, proxies_in_between):
    """`chain`: what the client wrote and the hops after it; then trusted proxies appended the rest."""
    untrusted = [a for a in chain if not any(a in p for p in PROXIES if p.version == a.version)]
    proxy_hops = [f"10.0.0.{i + 1}" for i in range(proxies_in_between)]
    header = ", ".join([*map(str, chain), *proxy_hops])
    found = client_address("10.9.9.9", [header], PROXIES)
    if untrusted:
        assert found == untrusted[-1]
    else:
        # Only proxies all the way: the leftmost is as far as anyone can tell.
        assert found == chain[0]


def test_x_forwarded_for_is_read_from_the_right_across_several_headers():
    assert client_address("10.0.0.1", ["198.51.100.1, 203.0.113.9", "10.0.0.2"], PROXIES) == (
        ipaddress.ip_address("203.0.113.9")
    )
    # A forged leftmost entry cannot stand in for the real client.
    assert client_address("10.0.0.1", ["10.0.0.5, 203.0.113.9"], PROXIES) == ipaddress.ip_address("203.0.113.9")
    # Garbage stops the walk at the proxy that appended it.
    assert client_address("10.0.0.1", ["203.0.113.9, not-an-address"], PROXIES) == ipaddress.ip_address("10.0.0.1")
    # No proxy trusted: the header is ignored.
    assert client_address("10.0.0.1", ["203.0.113.9"], ()) == ipaddress.ip_address("10.0.0.1")
    assert client_address(None, ["203.0.113.9"], PROXIES) is None


@given(st.integers(1, 10_000), st.integers(1, 7 * 24 * 3600))
def test_gcra_lets_exactly_the_configured_burst_through(requests, seconds):
    if seconds * 1000 < requests:
        return
    interval, capacity = gcra(Rate(requests=requests, per=timedelta(seconds=seconds)))
    # The n-th request of a burst needs n intervals of room: exactly `requests` fit.
    assert requests * interval <= capacity < (requests + 1) * interval
    # The refill takes at most `requests` ms less than configured, never longer.
    assert seconds * 1000 - requests <= capacity <= seconds * 1000


@given(st.integers(0, 10**9))
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait_ms):
    seconds = retry_after_seconds(wait_ms)
    assert seconds >= 1 and seconds * 1000 >= wait_ms and (seconds - 1) * 1000 < max(wait_ms, 1)


def test_the_checks_of_a_form_post_cover_client_network_contact_and_form_with_hashed_keys():
    rate = Rate(requests=5, per=timedelta(minutes=10))
    config = Limits(form=EndpointLimits(ip=rate, network=rate, contact=rate, form=rate), exempt=["127.0.0.0/8"])
    identities = contact_identities("Ana@Example.COM", "+49 30 1234567")
    assert identities == ["email:ana@example.com", "phone:+49301234567"]
    checks = checks_for("form", config, ipaddress.ip_address("203.0.113.7"), identities=identities, form_id="contact")
    assert [check.scope for check in checks] == ["ip", "network", "contact", "contact", "form"]
    assert all(check.key.startswith(f"{KEY_PREFIX}form:") for check in checks)
    assert not any("203.0.113" in check.key or "ana@" in check.key for check in checks)
    # The same network, another address: the same network counter.
    other = checks_for("form", config, ipaddress.ip_address("203.0.113.200"), form_id="contact")
    assert other[1].key == checks[1].key and other[0].key != checks[0].key
    assert checks_for("form", config, ipaddress.ip_address("127.0.0.1"), form_id="contact") == []
    # An endpoint without limits counts nothing.
    assert checks_for("csat", config, ipaddress.ip_address("203.0.113.7")) == []


def test_proxies_and_exempt_networks_are_validated_cidrs():
    assert Limits(trusted_proxies=["10.1.2.3/8", "2001:db8::1"]).trusted_proxies == ["10.0.0.0/8", "2001:db8::1/128"]
    with pytest.raises(ValidationError):
        Limits(trusted_proxies=["10.0.0.0/33"])
    with pytest.raises(ValidationError):
        Limits(exempt=["localhost"])
