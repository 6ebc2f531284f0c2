"""The router's decisions, in pure code: which events a customer message or an agent command causes.

A batch is decided against a `RouterView`: what Redis knew when the batch was read, updated with
every event the batch decided so far (`absorb`), so that the second message of a ticket opened
in the same batch joins it. No I/O here; the handler reads the view and writes the outcome.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.router import duplicates
from services.router.assignment import round_robin
from services.router.classification import classify
from services.router.lifecycle import customer_wrote, decide_lifecycle
from services.router.tickets import message_added, new_ticket
from shared.config import DeskConfig
from shared.events import (
    AddressUndeliverable,
    AgentCommand,
    ContactEvent,
    ContactSummary,
    CsatRated,
    IdentityLinked,
    InboundMessage,
    MessageAdded,
    PriorityChanged,
    ReplyRoute,
    StatusChanged,
    TagsChanged,
    TicketAssigned,
    TicketCreated,
    TicketEscalated,
    TicketEvent,
    TicketQueued,
    TicketStatus,
)
from shared.identities import identities_of, normalise_email
from shared.ids import derived_id

RouterEvent = TicketEvent | ContactEvent
# Identities typed into a form or a chat are claimed, not proved by the channel (SPEC §3 Router).
_CLAIMING_CHANNELS = frozenset({"form", "chat"})


@dataclass(frozen=True)
class KnownTicket:
    """What the router's rules need of a ticket (read from its read-model HASH, then kept up to date
    by `RouterView.absorb`)."""

    contact_id: str
    channel: str
    reply_route: ReplyRoute | None
    status: TicketStatus = "new"
    team: str = ""
    assignee_id: str | None = None
    priority: str = "normal"
    tags: tuple[str, ...] = ()
    escalation_level: int = 0
    resolutions: int = 0
    public_replies: int = 0
    subject: str | None = None
    contact_name: str | None = None
    # The last resolution the customer rated (0: none).
    csat_resolution: int = 0


@dataclass
class RouterView:
    """Tickets and identity owners as the batch sees them; `turns` is each team's round-robin counter."""

    tickets: dict[str, KnownTicket | None] = field(default_factory=dict)
    owners: dict[str, str | None] = field(default_factory=dict)
    turns: dict[str, int] = field(default_factory=dict)
    # Turns this batch used, per team: the handler adds them to the counters it read.
    used_turns: Counter[str] = field(default_factory=Counter)
    # Records (by ID) already handled earlier: their event is in the read model.
    handled: set[str] = field(default_factory=set)
    # Agents who said `/sb away`: new tickets pass them by.
    away: frozenset[str] = frozenset()
    # The latest tickets of the batch's contacts (cross-channel duplicates).
    recent: duplicates.RecentTickets = field(default_factory=duplicates.RecentTickets)

    def absorb(self, events: list[RouterEvent]) -> None:
        """What the events change in the view (the same whether decided now or remembered)."""
        for event in events:
            self.recent.absorb(event)
            if isinstance(event, IdentityLinked):
                if self.owners.get(event.identity) is None:
                    self.owners[event.identity] = event.contact_id
                continue
            if isinstance(event, TicketCreated):
                self.tickets[event.ticket_id] = KnownTicket(
                    event.contact.contact_id,
                    event.channel,
                    event.reply_route,
                    team=event.team,
                    priority=event.priority,
                    tags=tuple(event.tags),
                    subject=event.subject,
                    contact_name=event.contact.name,
                )
                continue
            if isinstance(event, AddressUndeliverable) or (known := self.tickets.get(event.ticket_id)) is None:
                continue
            if (changes := _changes(event)) is not None:
                self.tickets[event.ticket_id] = replace(known, **changes(known))


def _changes(event: TicketEvent) -> Callable[[KnownTicket], dict[str, Any]] | None:
    """How a ticket event changes the view's ticket, or None when it does not."""
    match event:
        case MessageAdded(author="customer", review=None) if event.reply_route is not None:
            return lambda _: {"reply_route": event.reply_route}
        case MessageAdded(author="agent", internal=False):
            return lambda known: {"public_replies": known.public_replies + 1}
        case TicketAssigned():
            return lambda _: {"assignee_id": event.agent_id, "team": event.team}
        case TicketQueued():
            return lambda _: {"assignee_id": None, "team": event.team}
        case StatusChanged():
            return lambda _: {"status": event.to_status, "resolutions": event.resolution}
        case PriorityChanged():
            return lambda _: {"priority": event.to_priority}
        case TagsChanged():
            return lambda _: {"tags": tuple(event.tags)}
        case TicketEscalated():
            return lambda _: {"escalation_level": event.level}
        case CsatRated():
            return lambda known: {"csat_resolution": max(known.csat_resolution, event.resolution)}
    return None


@dataclass(frozen=True)
class Decision:
    events: list[RouterEvent]

    @property
    def claims(self) -> dict[str, str]:
        """Identity → contact links this decision makes; they must not race another router instance."""
        return {event.identity: event.contact_id for event in self.events if isinstance(event, IdentityLinked)}


def decide_inbound(message: InboundMessage, view: RouterView, config: DeskConfig, now: datetime) -> Decision:
    events: list[RouterEvent] = [*_undeliverable(message, now)]
    ticket = view.tickets.get(message.ticket_id)
    if message.kind not in ("message", "edit"):
        # Machine mail never opens a ticket; on an existing one it is recorded, never answered.
        if ticket is not None:
            events.append(message_added(message, now, contact_id=None))
        return Decision(events)
    if ticket is not None:
        review = _review_reason(message, ticket.contact_id, view)
        events.append(message_added(message, now, contact_id=ticket.contact_id, review=review))
        if review is None:
            events += _links(message, ticket.contact_id, view, now)
            events += customer_wrote(message, ticket, now)
        return Decision(events)
    contact = _resolve_contact(message, view)
    classification = classify(message, config)
    duplicate = _duplicate(message, contact.contact_id, view, config, now)
    if duplicate is not None and duplicate.action == "merge":
        # What the batch knows of the earlier ticket is fresher than what was read of it.
        target = view.tickets.get(duplicate.ticket_id) or duplicate.ticket
        events += duplicates.merged_at_birth(message, contact, classification, duplicate, target, now)
        events += _links(message, contact.contact_id, view, now)
        return Decision(events)
    team = config.team(classification.team)
    turn = view.turns.get(team.id, 0) + view.used_turns[team.id]
    view.used_turns[team.id] += 1
    assignee = config.agent(round_robin(team.members, turn, view.away))
    events += new_ticket(message, contact, classification, assignee, now)
    if duplicate is not None:
        events.append(duplicates.suggestion(message, duplicate, now))
    events += _links(message, contact.contact_id, view, now)
    return Decision(events)


def decide_command(command: AgentCommand, view: RouterView, config: DeskConfig, now: datetime) -> Decision:
    """The events of an agent command: its changes, or one `command.rejected` saying why not."""
    return Decision(decide_lifecycle(command, view.tickets, config, now))


def _duplicate(
    message: InboundMessage, contact_id: str, view: RouterView, config: DeskConfig, now: datetime
) -> duplicates.Duplicate | None:
    """The contact's recent open ticket the new one repeats (config `duplicates`), or None."""
    settings = config.duplicates
    if not settings.window:
        return None
    return duplicates.find_duplicate(
        message.subject,
        message.text,
        view.recent.of(contact_id),
        now,
        window=settings.window,
        merge_at=settings.merge_at,
        suggest_at=settings.suggest_at,
    )


def _review_reason(message: InboundMessage, contact_id: str, view: RouterView) -> str | None:
    """Anyone can reply into an email thread: mail from someone else is a note for review (Zammad #5064)."""
    if message.channel != "email" or not message.sender.email:
        return None
    if view.owners.get(f"email:{normalise_email(message.sender.email)}") == contact_id:
        return None
    return "the sender is not the ticket's contact"


def _resolve_contact(message: InboundMessage, view: RouterView) -> ContactSummary:
    """The contact owning the sender's strongest known identity, else a new one."""
    identities = identities_of(message.sender)
    contact_id = next((owner for identity in identities if (owner := view.owners.get(identity))), None)
    if contact_id is None:
        contact_id = f"c_{derived_id('contact', message.message_id).hex[:16]}"
    return ContactSummary(
        contact_id=contact_id, name=message.sender.name, email=message.sender.email, identities=identities
    )


def _links(message: InboundMessage, contact_id: str, view: RouterView, now: datetime) -> list[IdentityLinked]:
    """The sender's identities nobody owns yet now belong to `contact_id` (never taken from another)."""
    verified, message_id = message.channel not in _CLAIMING_CHANNELS, str(message.message_id)
    return [
        IdentityLinked(
            event_id=derived_id(message_id, "identity_linked", identity),
            occurred_at=now,
            identity=identity,
            contact_id=contact_id,
            verified=verified,
            ticket_id=message.ticket_id,
            correlation_id=message_id,
            traceparent=message.traceparent,
        )
        for identity in identities_of(message.sender)
        if view.owners.get(identity) is None
    ]


def _undeliverable(message: InboundMessage, now: datetime) -> list[AddressUndeliverable]:
    if message.kind != "bounce":
        return []
    return [
        AddressUndeliverable(
            event_id=derived_id(message.message_id, "undeliverable", address),
            occurred_at=now,
            identity=f"email:{normalise_email(address)}",
            reason="the address bounced",
            ticket_id=message.ticket_id,
            correlation_id=str(message.message_id),
            traceparent=message.traceparent,
        )
        for address in dict.fromkeys(normalise_email(address) for address in message.bounced_recipients)
    ]
