"""Identifiers: human-friendly ticket IDs and deterministic event IDs.

Deterministic IDs make redelivered work produce the very same events, so consumers can
deduplicate by event ID (at-least-once delivery, idempotent effects).
"""

from __future__ import annotations

import re
import uuid

TICKET_ID_PATTERN = r"^[A-Z]{2,5}-\d+$"
_TICKET_ID = re.compile(TICKET_ID_PATTERN)
# Sequence numbers start here so that the first tickets already look like tickets (SB-1001).
TICKET_NUMBER_OFFSET = 1000
_NAMESPACE = uuid.UUID("6f1c8a52-3c1e-4b8e-9a43-5b0c2f7d9e10")


def format_ticket_id(prefix: str, sequence: int) -> str:
    return f"{prefix}-{TICKET_NUMBER_OFFSET + sequence}"


def is_ticket_id(value: str) -> bool:
    return bool(_TICKET_ID.match(value))


def derived_id(*parts: object) -> uuid.UUID:
    """The same parts always give the same UUID."""
    return uuid.uuid5(_NAMESPACE, "\x1f".join(str(part) for part in parts))
