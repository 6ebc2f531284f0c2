"""The ticket events messages and commands cause. Pure: no I/O, deterministic event IDs."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from shared import i18n
from shared.config import Agent, Classification, DeskConfig, Team
from shared.events import (
    CALL_SOURCE_PREFIX,
    AgentCommand,
    AgentReply,
    ContactSummary,
    InboundMessage,
    MessageAdded,
    ReplyRoute,
    TicketAssigned,
    TicketCreated,
    TicketEvent,
    TicketQueued,
)
from shared.ids import derived_id

if TYPE_CHECKING:
    from services.router.decide import KnownTicket

# How much of the opening message travels in `ticket.assigned` for the agents' announcement.
EXCERPT_CHARS = 500


def handled_event_id(record: InboundMessage | AgentCommand) -> UUID:
    """The ID of the event that records `record` on its ticket: a message's message_added, a command's
    main event or its rejection (a command has one or the other). Once that event is in the read model,
    the record was handled and a redelivery of it changes nothing."""
    if isinstance(record, InboundMessage):
        return derived_id(record.message_id, "message_added")
    if isinstance(record, AgentReply):
        return derived_id(record.event_id, "reply")
    return derived_id(record.event_id, "handled")


def _envelope(message: InboundMessage, step: str, now: datetime) -> dict[str, Any]:
    message_id = str(message.message_id)
    return {
        "event_id": derived_id(message_id, step),
        "occurred_at": now,
        "ticket_id": message.ticket_id,
        "correlation_id": message_id,
        "traceparent": message.traceparent,
    }


def ticket_assigned(envelope: dict[str, Any], ticket: KnownTicket, agent: Agent, actor: str) -> TicketAssigned:
    """The ticket, as the router knows it, handed to `agent` by `actor` (from its assignee, if any)."""
    return TicketAssigned(
        **envelope,
        team=ticket.team,
        agent_id=agent.id,
        agent_name=agent.name,
        slack_user_id=agent.slack_user_id,
        subject=ticket.subject,
        contact=ContactSummary(contact_id=ticket.contact_id, name=ticket.contact_name),
        channel=ticket.channel,
        priority=ticket.priority,
        actor=actor,
        previous_agent_id=ticket.assignee_id,
    )


def ticket_created(
    message: InboundMessage,
    contact: ContactSummary,
    classification: Classification,
    now: datetime,
    merged_into: str | None = None,
    contact_tags: list[str] | None = None,
) -> TicketCreated:
    """The ticket the message opens, as the router classified it (`merged_into`: a duplicate of that one;
    `contact_tags`: the contact's tags the rules saw)."""
    return TicketCreated(
        **_envelope(message, "created", now),
        channel=message.channel,
        subject=message.subject,
        contact=contact,
        team=classification.team,
        category=classification.category,
        priority=classification.priority,
        tags=classification.tags,
        reply_route=message.reply_route,
        acknowledge=message.acknowledge,
        follow_up_of=message.follow_up_of,
        language=classification.language,
        flags=classification.flags,
        skills=classification.skills,
        rules=classification.rules,
        merged_into=merged_into,
        contact_tags=contact_tags or [],
        customer_language=classification.customer_language,
        customer_language_from=classification.customer_language_from,
        customer_timezone=message.customer_timezone if i18n.zone(message.customer_timezone) else None,
    )


def message_added(
    message: InboundMessage, now: datetime, *, contact_id: str | None, review: str | None = None
) -> MessageAdded:
    """A person's message on the ticket; machine mail is recorded with the author "system"."""
    is_person = message.kind in ("message", "edit")
    return MessageAdded(
        **_envelope(message, "message_added", now),
        message_id=message.message_id,
        author="customer" if is_person else "system",
        channel=message.channel,
        kind=message.kind,
        text=message.text,
        html=message.html,
        attachments=message.attachments,
        sender=message.sender,
        review=review,
        edit_of=message.edit_of,
        reply_route=message.reply_route if is_person else None,
        contact_id=contact_id if is_person else None,
        received_at=message.received_at,
    )


def new_ticket(
    message: InboundMessage,
    contact: ContactSummary,
    classification: Classification,
    assignee: Agent | None,
    now: datetime,
    queued_reason: str | None = None,
    contact_tags: list[str] | None = None,
    actor: str = "system",
    over_capacity: bool = False,
) -> list[TicketEvent]:
    """The new ticket, its first message, and its assignment (by `actor`: "system" when the router chose,
    an agent ID when the agent took it themselves, as a logged call); with no `assignee`, its wait in the
    team's queue (`ticket.queued`, saying why)."""
    opened: list[TicketEvent] = [
        ticket_created(message, contact, classification, now, contact_tags=contact_tags),
        message_added(message, now, contact_id=contact.contact_id),
    ]
    if assignee is None:
        queued = TicketQueued(
            **_envelope(message, "queued", now), team=classification.team, actor="system", reason=queued_reason
        )
        return [*opened, queued]
    return [
        *opened,
        TicketAssigned(
            **_envelope(message, "assigned", now),
            team=classification.team,
            agent_id=assignee.id,
            agent_name=assignee.name,
            slack_user_id=assignee.slack_user_id,
            subject=message.subject,
            contact=contact,
            channel=message.channel,
            priority=classification.priority,
            excerpt=excerpt(message.text),
            actor=actor,
            over_capacity=over_capacity,
        ),
    ]


def call_taker(message: InboundMessage, team: Team, config: DeskConfig) -> Agent | None:
    """The agent who took and logged a phone call (`source` "call:<agent ID>", services/intake/phone_calls.py),
    when they are a member or the lead of the call ticket's team: the call was theirs, so its ticket is too
    (as Zendesk Talk assigns a call's ticket to the agent who answered). None otherwise: routed as usual."""
    if message.channel != "phone" or not message.source.startswith(CALL_SOURCE_PREFIX):
        return None
    agent_id = message.source.removeprefix(CALL_SOURCE_PREFIX)
    # A team's members and lead are configured agents (the config check says so).
    return config.agent(agent_id) if agent_id in team.members or agent_id == team.lead else None


def excerpt(text: str) -> str:
    """The start of a message, cut at a word boundary when it is longer than EXCERPT_CHARS."""
    if len(text) <= EXCERPT_CHARS:
        return text
    cut = text[:EXCERPT_CHARS]
    head = cut.rpartition(" ")[0]
    return f"{head if len(head) > EXCERPT_CHARS - 80 else cut}…"


def agent_reply(command: AgentReply, channel: str, deliver_to: ReplyRoute | None, now: datetime) -> MessageAdded:
    return MessageAdded(
        event_id=handled_event_id(command),
        occurred_at=now,
        ticket_id=command.ticket_id,
        correlation_id=command.correlation_id or str(command.event_id),
        traceparent=command.traceparent,
        message_id=derived_id(command.event_id, "reply_message"),
        author="agent",
        agent_id=command.agent_id,
        channel=deliver_to.channel if deliver_to else channel,
        text=command.text,
        reply_route=deliver_to,
        received_at=command.occurred_at,
        origin=command.origin,
    )
