"""Versioned event schemas carried on Kafka.

Every event shares one envelope (event ID, type, version, occurred-at, ticket ID, correlation and
trace context). `InboundMessage` travels on the inbound topic; the `TicketEvent` union on the
ticket topic is the ticket's audit trail, keyed by ticket ID.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, TypeAdapter

from shared.ids import TICKET_ID_PATTERN

TicketId = Annotated[str, Field(pattern=TICKET_ID_PATTERN)]
Channel = Literal["form", "email", "chat", "telegram", "slack"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Envelope(_Model):
    event_id: UUID
    version: Literal[1] = 1
    occurred_at: AwareDatetime
    ticket_id: TicketId
    # The ID of whatever set this chain of events off (the inbound message), for tracing a ticket's story.
    correlation_id: str | None = None
    # W3C trace context, so a trace follows the message across services.
    traceparent: str | None = None


class Sender(_Model):
    name: str | None = None
    email: EmailStr | None = None
    phone: str | None = None


class InboundMessage(Envelope):
    """A customer message from any channel, normalised by intake."""

    type: Literal["inbound.message"] = "inbound.message"
    message_id: UUID
    channel: Channel
    # The channel's own ID of the message (Message-ID, update_id, form idempotency key ...).
    channel_message_id: str
    source: str = Field(description="Which entry point took it, e.g. the form ID or mailbox.")
    sender: Sender
    subject: str | None = None
    text: str
    received_at: AwareDatetime


class ContactSummary(_Model):
    contact_id: str
    name: str | None = None
    email: str | None = None


class TicketCreated(Envelope):
    type: Literal["ticket.created"] = "ticket.created"
    channel: Channel
    subject: str | None
    contact: ContactSummary
    team: str
    category: str
    priority: str
    tags: list[str] = []


class MessageAdded(Envelope):
    type: Literal["ticket.message_added"] = "ticket.message_added"
    message_id: UUID
    author: Literal["customer", "agent"]
    channel: Channel
    text: str
    received_at: datetime


class TicketAssigned(Envelope):
    type: Literal["ticket.assigned"] = "ticket.assigned"
    team: str
    agent_id: str
    agent_name: str
    slack_user_id: str
    # Carried so that notifications need no lookup.
    subject: str | None
    contact: ContactSummary


class SlaDeadlineSet(Envelope):
    type: Literal["sla.deadline_set"] = "sla.deadline_set"
    metric: Literal["first_response"]
    policy: str
    due_at: AwareDatetime


class SlaWarning(Envelope):
    type: Literal["sla.warning"] = "sla.warning"
    metric: Literal["first_response"]
    due_at: AwareDatetime
    fraction: float


class SlaBreached(Envelope):
    type: Literal["sla.breached"] = "sla.breached"
    metric: Literal["first_response"]
    due_at: AwareDatetime


TicketEvent = Annotated[
    TicketCreated | MessageAdded | TicketAssigned | SlaDeadlineSet | SlaWarning | SlaBreached,
    Field(discriminator="type"),
]
ticket_event_adapter: TypeAdapter[TicketEvent] = TypeAdapter(TicketEvent)
