"""The ticket events an inbound message causes. Pure: no I/O, deterministic event IDs."""

from __future__ import annotations

from datetime import datetime

from shared.config import Agent, Classification
from shared.events import (
    ContactSummary,
    InboundMessage,
    MessageAdded,
    TicketAssigned,
    TicketCreated,
    TicketEvent,
)
from shared.ids import derived_id


def _envelope(message: InboundMessage, step: str, now: datetime) -> dict:
    return {
        "event_id": derived_id(message.message_id, step),
        "occurred_at": now,
        "ticket_id": message.ticket_id,
        "correlation_id": str(message.message_id),
        "traceparent": message.traceparent,
    }


def message_added(message: InboundMessage, now: datetime) -> MessageAdded:
    return MessageAdded(
        **_envelope(message, "message_added", now),
        message_id=message.message_id,
        author="customer",
        channel=message.channel,
        text=message.text,
        received_at=message.received_at,
    )


def new_ticket(
    message: InboundMessage,
    contact: ContactSummary,
    classification: Classification,
    assignee: Agent,
    now: datetime,
) -> list[TicketEvent]:
    return [
        TicketCreated(
            **_envelope(message, "created", now),
            channel=message.channel,
            subject=message.subject,
            contact=contact,
            team=classification.team,
            category=classification.category,
            priority=classification.priority,
            tags=classification.tags,
        ),
        message_added(message, now),
        TicketAssigned(
            **_envelope(message, "assigned", now),
            team=classification.team,
            agent_id=assignee.id,
            agent_name=assignee.name,
            slack_user_id=assignee.slack_user_id,
            subject=message.subject,
            contact=contact,
        ),
    ]
