"""What intake indexes in Redis for each inbound message, as operations `switchboard replay` repeats.

Live, `Intake.resolve_ticket` writes these as it threads a message; the message carries them
(`idempotency_key`, `conversations`, since InboundMessage version 2), so the same keys are rebuilt
from the inbound topic alone: the channel message's ticket (a redelivery joins the same ticket),
the conversations that lead to the ticket, and the web-chat session a customer resumes.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from services.intake.ticket_ids import remembered_key
from shared.conversations import CHAT_SESSION_PREFIX, chat_session_key, conversation_key
from shared.events import InboundMessage

SESSION_TTL_SECONDS = 30 * 24 * 3600
_TICKET_NUMBER = re.compile(r"^(?P<prefix>[A-Z]{2,5})-(?P<number>\d+)$")


def index_operations(message: InboundMessage, now: datetime | None = None) -> list[list[str]]:
    """Redis commands that index `message` (the first idempotency record wins, as live)."""
    ops = []
    if message.idempotency_key:
        ops.append(["SET", remembered_key(message.idempotency_key), message.ticket_id, "NX"])
    for conversation in message.conversations:
        if conversation.startswith(CHAT_SESSION_PREFIX):
            remaining = SESSION_TTL_SECONDS - ((now or datetime.now(UTC)) - message.received_at).total_seconds()
            if remaining > 0:
                session = {"ticket_id": message.ticket_id, "name": message.sender.name, "email": message.sender.email}
                ops.append(["SET", chat_session_key(conversation), json.dumps(session), "EX", str(int(remaining))])
        else:
            ops.append(["SET", conversation_key(conversation), message.ticket_id])
    return ops


def ticket_number(ticket_id: str) -> tuple[str, int] | None:
    """("SB", 1042) for "SB-1042"."""
    match = _TICKET_NUMBER.match(ticket_id)
    return (match["prefix"], int(match["number"])) if match else None
