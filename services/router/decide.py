"""The router's decisions, in pure code: which events a customer message or an agent command causes.

A batch is decided against a `RouterView`: what Redis knew when the batch was read, updated with
every event the batch decided so far (`absorb`), so that the second message of a ticket opened
in the same batch joins it. No I/O here; the handler reads the view and writes the outcome.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.router import duplicates
from services.router.assignment import WORKING_STATUSES, Desk, Need, choose
from services.router.classification import classify
from services.router.contact_tags import decide_tag_command
from services.router.contacts import (
    ContactGraph,
    Refused,
    decide_contact_command,
    decide_keep_apart,
    resolution_events,
    resolve,
    sender_identities,
)
from services.router.frozen import evolve
from services.router.lifecycle import SYSTEM, customer_wrote, decide_lifecycle, rejected
from services.router.queues import flag_over_capacity, system_assign
from services.router.suggestions import suggested
from services.router.tickets import call_taker, message_added, new_ticket
from shared.config import DeskConfig
from shared.events import (
    AddressUndeliverable,
    AgentCommand,
    AssignTicket,
    ContactEvent,
    ContactMerged,
    ContactSummary,
    ContactTagsChanged,
    ContactUnmerged,
    CsatRated,
    IdentityLinked,
    InboundMessage,
    KeepContactsApart,
    MergeContacts,
    MessageAdded,
    PriorityChanged,
    ReplyRoute,
    StatusChanged,
    TagContact,
    TagsChanged,
    TicketAssigned,
    TicketCreated,
    TicketEscalated,
    TicketEvent,
    TicketQueued,
    TicketStatus,
    UnmergeContacts,
)
from shared.identities import normalise_email
from shared.ids import derived_id
from shared.read_model import contact_tags_json

if TYPE_CHECKING:
    from services.knowledge.search import KnowledgeIndex

RouterEvent = TicketEvent | ContactEvent


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
    # The contacts the batch concerns: merges, verified identities, tickets (services.router.contacts).
    graph: ContactGraph = field(default_factory=ContactGraph)
    # The latest tickets of the batch's contacts (cross-channel duplicates).
    recent: duplicates.RecentTickets = field(default_factory=duplicates.RecentTickets)
    # How many tickets each agent has in new or open (what capacity counts), as read and as the batch changed it.
    working: dict[str, int] = field(default_factory=dict)
    # When each agent was last given a ticket (seconds since the epoch).
    last_assigned: dict[str, float] = field(default_factory=dict)
    # Agents the router gave a ticket for being under capacity: the claim checks their load is still
    # what was read (another router instance may have given them one meanwhile).
    capacity_checked: set[str] = field(default_factory=set)
    # How many tickets each agent had in new or open when the batch was read.
    loads_read: dict[str, int] = field(default_factory=dict)
    # Agents inside their working hours when the batch is decided (None: everyone).
    on_shift: frozenset[str] | None = None
    # The knowledge base's search index (None: no article), for suggesting articles to new tickets.
    knowledge: KnowledgeIndex | None = None

    def desk(self) -> Desk:
        """The agents' state assignment decides against, as the batch sees it now."""
        return Desk(
            loads=dict(self.working),
            away=self.away,
            on_shift=self.on_shift,
            last_assigned=self.last_assigned,
            turns={team: self.turns.get(team, 0) + self.used_turns[team] for team in {*self.turns, *self.used_turns}},
        )

    def absorb(self, events: list[RouterEvent]) -> None:
        """What the events change in the view (the same whether decided now or remembered)."""
        for event in events:
            self.graph.absorb(event)
            self.recent.absorb(event)
            if isinstance(event, TicketAssigned):
                self.last_assigned[event.agent_id] = event.occurred_at.timestamp()
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
                changed = evolve(known, **changes(known))
                self.tickets[event.ticket_id] = changed
                self._rework(event.ticket_id, known, changed)

    def _rework(self, ticket_id: str, before: KnownTicket, after: KnownTicket) -> None:
        """Counts the ticket out of its agent's load and into the next one's as its assignee or status changed
        (the read model's working sets, which the counts were read from, do the same)."""
        if before.assignee_id is not None and before.status in WORKING_STATUSES:
            self.working[before.assignee_id] = self.working.get(before.assignee_id, 1) - 1
        if after.assignee_id is not None and after.status in WORKING_STATUSES:
            self.working[after.assignee_id] = self.working.get(after.assignee_id, 0) + 1


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

    @property
    def merges(self) -> dict[str, str]:
        """Merged contact → survivor of each merge or unmerge this decision makes; raced like `claims`
        (an unmerge claims the pointer it then removes)."""
        return {
            event.contact_id: event.survivor_id
            for event in self.events
            if isinstance(event, ContactMerged | ContactUnmerged)
        }

    @property
    def retagged(self) -> dict[str, str]:
        """Contact → its tags (`contact_tags_json`) before the first tag change this decision makes: a tag
        change says the tags after it, so the claim checks nobody changed them since they were read."""
        before: dict[str, str] = {}
        for event in self.events:
            if isinstance(event, ContactTagsChanged):
                before.setdefault(
                    event.contact_id, contact_tags_json((set(event.tags) - set(event.added)) | set(event.removed))
                )
        return before


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
        if review is not None:
            events.append(message_added(message, now, contact_id=ticket.contact_id, review=review))
            return Decision(events)
        resolution = resolve(
            message.channel,
            message.sender,
            view.owners,
            view.graph,
            _new_contact_id(message),
            anchor=ticket.contact_id,
            # A web chat repeats its session's address on every message: the first one suggested already.
            suggest_claimed=message.channel != "chat",
        )
        # The contact the sender's identities belong to (the survivor of any merge the message makes).
        sender_contact = None if resolution.foreign else resolution.contact_id
        events.append(message_added(message, now, contact_id=sender_contact))
        events += resolution_events(message, resolution, view.graph, now)
        events += customer_wrote(message, ticket, now)
        return Decision(events)
    resolution = resolve(message.channel, message.sender, view.owners, view.graph, _new_contact_id(message))
    contact = ContactSummary(
        contact_id=resolution.contact_id,
        name=message.sender.name,
        email=message.sender.email,
        identities=list(sender_identities(message.channel, message.sender)),
    )
    contact_tags = sorted(view.graph.tags(contact.contact_id))
    classification = classify(message, config, contact_tags=contact_tags)
    duplicate = _duplicate(message, contact.contact_id, view, config, now)
    if duplicate is not None and duplicate.action == "merge":
        # What the batch knows of the earlier ticket is fresher than what was read of it.
        target = view.tickets.get(duplicate.ticket_id) or duplicate.ticket
        events += duplicates.merged_at_birth(
            message, contact, classification, duplicate, target, now, contact_tags=contact_tags
        )
        events += resolution_events(message, resolution, view.graph, now)
        return Decision(events)
    team = config.team(classification.team)
    if (taker := call_taker(message, team, config)) is not None:
        # The call was taken already, whatever the agent's load: no turn, no capacity check (flagged when over).
        over = view.working.get(taker.id, 0) >= taker.capacity
        opened = new_ticket(
            message, contact, classification, taker, now, contact_tags=contact_tags, actor=taker.id, over_capacity=over
        )
    else:
        need = Need(team.id, tuple(classification.skills), classification.language)
        choice = choose(need, view.desk(), config)
        assignee = None
        if choice.agent_id is not None:
            assignee = config.agent(choice.agent_id)
            view.capacity_checked.add(assignee.id)
            # Every assignment of the router's own takes a turn (replay counts them so), whatever the routing.
            view.used_turns[team.id] += 1
        opened = new_ticket(
            message,
            contact,
            classification,
            assignee,
            now,
            queued_reason=choice.queued_reason,
            contact_tags=contact_tags,
        )
    events += opened
    created = opened[0]
    if isinstance(created, TicketCreated) and (suggestions := suggested(message, created, view.knowledge, config, now)):
        events.append(suggestions)
    if duplicate is not None:
        events.append(duplicates.suggestion(message, duplicate, now))
    events += resolution_events(message, resolution, view.graph, now)
    return Decision(events)


def decide_command(command: AgentCommand, view: RouterView, config: DeskConfig, now: datetime) -> Decision:
    """The events of an agent command: its changes, or one `command.rejected` saying why not. The system's
    own assignments (the dispatcher serving team queues) are applied when they still hold, else dropped
    silently (services/router/queues.py)."""
    if isinstance(command, MergeContacts | UnmergeContacts | TagContact | KeepContactsApart):
        try:
            if isinstance(command, TagContact):
                return Decision(decide_tag_command(command, view.graph, config, now))
            if isinstance(command, KeepContactsApart):
                return Decision(decide_keep_apart(command, view.graph, config, now))
            return Decision(decide_contact_command(command, view.graph, set(view.graph.contacts), config, now))
        except Refused as refusal:
            # Shown on the ticket the agent acted from; from the command line the CLI checked first.
            return Decision([rejected(command, str(refusal), now)] if command.ticket_id else [])
    if command.agent_id == SYSTEM and isinstance(command, AssignTicket):
        ticket = view.tickets.get(command.ticket_id)
        events = system_assign(command, ticket, view.desk(), config, now)
        if command.to_agent is not None and events:
            view.capacity_checked.add(command.to_agent)
            if ticket is not None:
                view.used_turns[ticket.team] += 1
        return Decision(events)
    events = decide_lifecycle(command, view.tickets, config, now)
    return Decision(flag_over_capacity(events, view.tickets, view.desk(), config))


def _duplicate(
    message: InboundMessage, contact_id: str, view: RouterView, config: DeskConfig, now: datetime
) -> duplicates.Duplicate | None:
    """The contact's recent open ticket the new one repeats (config `duplicates`), or None. A merged contact's
    tickets are its survivor's: every contact of the merge tree counts."""
    settings = config.duplicates
    if not settings.window:
        return None
    return duplicates.find_duplicate(
        message.subject,
        message.text,
        [ticket for member in view.graph.members(view.graph.root(contact_id)) for ticket in view.recent.of(member)],
        now,
        window=settings.window,
        merge_at=settings.merge_at,
        suggest_at=settings.suggest_at,
    )


def _review_reason(message: InboundMessage, contact_id: str, view: RouterView) -> str | None:
    """Anyone can reply into an email thread: mail from someone else is a note for review (Zammad #5064)."""
    if message.channel != "email" or not message.sender.email:
        return None
    owner = view.owners.get(f"email:{normalise_email(message.sender.email)}")
    if owner is not None and view.graph.root(owner) == view.graph.root(contact_id):
        return None
    return "the sender is not the ticket's contact"


def _new_contact_id(message: InboundMessage) -> str:
    return f"c_{derived_id('contact', message.message_id).hex[:16]}"


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
