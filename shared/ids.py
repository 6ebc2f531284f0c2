"""Identifiers: human-friendly ticket IDs and deterministic event IDs.

Deterministic IDs make redelivered work produce the very same events, so consumers can
deduplicate by event ID (at-least-once delivery, idempotent effects).
"""

from __future__ import annotations

import hashlib
import re
import uuid

TICKET_ID_PATTERN = r"^[A-Z]{2,5}-\d+$"
# Agent IDs travel in commands, events and Redis keys ("sb:agent:<id>"): letters, digits, _ . -
AGENT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_TICKET_ID = re.compile(TICKET_ID_PATTERN)
# Sequence numbers start here so that the first tickets already look like tickets (SB-1001).
TICKET_NUMBER_OFFSET = 1000
_NAMESPACE = uuid.UUID("6f1c8a52-3c1e-4b8e-9a43-5b0c2f7d9e10")
# SHA-1 state after the namespace, copied per ID rather than hashing the namespace again.
_NAMESPACE_HASH = hashlib.sha1(_NAMESPACE.bytes)


def format_ticket_id(prefix: str, sequence: int) -> str:
    return f"{prefix}-{TICKET_NUMBER_OFFSET + sequence}"


def is_ticket_id(value: str) -> bool:
    return bool(_TICKET_ID.match(value))


_OUR_MESSAGE_ID = re.compile(r"^[a-z]{2,5}-\d+\.[0-9a-f]{32}@(?P<domain>.+)$")


def our_message_id(ticket_id: str, domain: str, unique: str | None = None) -> str:
    """The Message-ID (without <>) of a mail Switchboard sends about a ticket; the same for the same `unique`."""
    token = derived_id("message-id", unique).hex if unique is not None else uuid.uuid4().hex
    return f"{ticket_id.lower()}.{token}@{domain}"


def is_our_message_id(message_id: str, domains: set[str]) -> bool:
    """Whether a Message-ID is one Switchboard made: such a mail coming in is our own, looping."""
    match = _OUR_MESSAGE_ID.match(message_id.lower())
    return bool(match) and match["domain"] in domains


def derived_id(*parts: object) -> uuid.UUID:
    """The same parts always give the same UUID (version 5, RFC 9562 §5.5, in our namespace)."""
    digest = _NAMESPACE_HASH.copy()
    digest.update("\x1f".join(map(str, parts)).encode())
    return uuid.UUID(bytes=digest.digest()[:16], version=5)
