"""Rate limits of the public endpoints, decided here: who the client is, what is counted, how long to wait. Pure.

The counting itself is GCRA (the generic cell rate algorithm, as ATM's and most API gateways' limiters)
in one Redis script per request (services/intake/limiter.py), so that every intake-http instance shares
the counts. A limit of `requests` per `per` lets that many through at once, then one every
`per / requests`: each counter is one "theoretical arrival time" (TAT), in ms on Redis's clock.

Who the client is: the TCP peer, unless the peer is a configured trusted proxy; then X-Forwarded-For
is read from the right and the first address that is not a trusted proxy is the client (the leftmost
entries are whatever the client wrote, so they are never believed past an untrusted hop).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shared.guard_config import EndpointLimits, Limits, Rate
from shared.identities import e164, normalise_email

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Endpoint = Literal["form", "chat", "csat", "kb"]
Scope = Literal["ip", "network", "contact", "form"]

KEY_PREFIX = "sb:limits:"


def parse_address(text: str) -> Address | None:
    """An address as a header or ASGI gives it ("203.0.113.7", "2001:db8::1", "[2001:db8::1]"), or None.

    IPv4-mapped IPv6 addresses (::ffff:203.0.113.7, as a dual-stack socket reports IPv4 peers) are the
    IPv4 address they carry: one client, one counter.
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=64)
def networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """The config's CIDR strings (already validated by shared.guard_config) as networks."""
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


def _within(address: Address, listed: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in listed)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> Address | None:
    """The client of a request: the peer, or, when the peer is a trusted proxy, the rightmost address of
    X-Forwarded-For (`forwarded_for`: every such header's value, in order) that is not a trusted proxy.

    An entry that is no address stops the walk: the hop that appended it is the client as far as we can
    tell. None only when the peer itself is unknown or no address (a Unix socket).
    """
    client = parse_address(peer) if peer else None
    if client is None or not _within(client, trusted):
        return client
    hops = [entry for value in forwarded_for for entry in value.split(",") if entry.strip()]
    for entry in reversed(hops):
        hop = parse_address(entry)
        if hop is None:
            return client
        client = hop
        if not _within(hop, trusted):
            return hop
    return client


def network_of(address: Address, ipv4_prefix: int, ipv6_prefix: int) -> Network:
    """The network an address is counted in: its /24 (IPv4) or /64 (IPv6) by default."""
    prefix = ipv4_prefix if address.version == 4 else ipv6_prefix
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


def contact_identities(email: object, phone: object) -> list[str]:
    """The identities a request names ("email:ana@example.com", "phone:+4930…"), as contacts are keyed."""
    found = []
    if isinstance(email, str) and email.strip():
        found.append(f"email:{normalise_email(email)}")
    if isinstance(phone, str) and phone.strip() and (number := e164(phone)):
        found.append(f"phone:{number}")
    return found


@dataclass(frozen=True)
class LimitCheck:
    """One counter a request must fit in: its Redis key, and GCRA's emission interval and capacity (ms)."""

    scope: Scope
    key: str
    interval_ms: int
    capacity_ms: int


def gcra(rate: Rate) -> tuple[int, int]:
    """(emission interval, capacity) in whole ms: `requests` intervals fit the capacity exactly, so
    exactly `requests` go through at once. The interval is rounded down to the ms (at least 1), so the
    refill takes at most `requests` ms less than `per`."""
    interval = max(1, int(rate.per.total_seconds() * 1000) // rate.requests)
    return interval, interval * rate.requests


def _hashed(value: str) -> str:
    # Keys name no address or email in the clear: a Redis dump is no list of customers.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def checks_for(
    endpoint: Endpoint,
    config: Limits,
    client: Address | None,
    *,
    identities: Sequence[str] = (),
    form_id: str | None = None,
) -> list[LimitCheck]:
    """Every counter a request to `endpoint` must fit in: none for an exempt client."""
    limits: EndpointLimits = getattr(config, endpoint)
    if client is not None and _within(client, networks(tuple(config.exempt))):
        return []
    found: list[tuple[Scope, Rate | None, str]] = []
    if client is not None:
        found.append(("ip", limits.ip, str(client)))
        found.append(("network", limits.network, str(network_of(client, config.ipv4_prefix, config.ipv6_prefix))))
    found += [("contact", limits.contact, identity) for identity in identities]
    if form_id is not None:
        found.append(("form", limits.form, form_id))
    checks = []
    for scope, rate, value in found:
        if rate is None:
            continue
        interval, capacity = gcra(rate)
        checks.append(LimitCheck(scope, f"{KEY_PREFIX}{endpoint}:{scope}:{_hashed(value)}", interval, capacity))
    return checks


def retry_after_seconds(wait_ms: int) -> int:
    """The Retry-After header's delay-seconds (RFC 9110 §10.2.3) for a wait in ms: whole seconds, rounded
    up (a client that waits as told is let through), at least 1."""
    return max(1, math.ceil(wait_ms / 1000))
