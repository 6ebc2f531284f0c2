"""The ticket lifecycle's rules, in pure code: which events an agent command causes, or why it is refused.

Statuses (SPEC §3 Lifecycle, issue #10): new → open → pending | on_hold → solved → closed. The active
ones (new, open, pending, on_hold) move freely among each other and to solved; solved goes back to
open (reopened) or on to closed; closed is final, only the rating of an earlier resolution still lands.
Actors: a configured agent, "admin" (the command line: everything an agent may do but claim and
rate), "system" (the SLA service's timers: closing a solved ticket, escalating, raising the priority;
the dispatcher's `command.assign`s are decided before they get here, in services/router/queues.py) and
"customer" (rating, and solving a ticket an article answered: reason "deflected").

Every command gets event IDs derived from its own ID, so a command delivered twice decides the very
same events; its main event, or its rejection, has the ID `tickets.handled_event_id(command)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.knowledge.articles import DEFLECTED
from services.router.tickets import agent_reply, handled_event_id, ticket_assigned
from shared.config import Agent, DeskConfig, Team
from shared.events import (
    ACTIVE_STATUSES,
    AgentCommand,
    AgentNote,
    AgentReply,
    AssignTicket,
    ClaimTicket,
    CommandRejected,
    CsatRated,
    EscalateTicket,
    InboundMessage,
    MergeTicket,
    MessageAdded,
    PriorityChanged,
    RateTicket,
    SetPriority,
    SetStatus,
    StatusChanged,
    TagsChanged,
    TagTicket,
    TicketAssigned,
    TicketEscalated,
    TicketEvent,
    TicketMerged,
    TicketQueued,
    TicketStatus,
)
from shared.ids import derived_id

if TYPE_CHECKING:
    from services.router.decide import KnownTicket

ADMIN, SYSTEM, CUSTOMER = "admin", "system", "customer"
# Statuses a customer's message brings back to open (issue #10: pending and solved; on hold too, as in
# Zendesk, where any requester update reopens a ticket that waits).
REOPENED_BY_CUSTOMER: frozenset[str] = frozenset({"pending", "on_hold", "solved"})


class _Refused(Exception):
    """A command that is not allowed; the message is the reason shown to whoever gave it."""


def allowed_transition(from_status: str, to_status: str) -> bool:
    """Whether a ticket may go from one status to another by `set_status` (same status: a no-op, not a move)."""
    if from_status in ACTIVE_STATUSES:
        return to_status in ACTIVE_STATUSES or to_status == "solved"
    return from_status == "solved" and to_status in ("open", "closed")


def decide_lifecycle(
    command: AgentCommand, tickets: Mapping[str, KnownTicket | None], config: DeskConfig, now: datetime
) -> list[TicketEvent]:
    """The events `command` causes against the tickets as the batch sees them; one `command.rejected`
    (with the reason in plain words) when it is not allowed; none when it changes nothing."""
    try:
        ticket = _check(command, tickets.get(command.ticket_id), config)
        return _RULES[type(command)](_Context(command, ticket, tickets, config, now))
    except _Refused as refusal:
        return [rejected(command, str(refusal), now)]


def rejected(command: AgentCommand, reason: str, now: datetime) -> CommandRejected:
    return CommandRejected(
        **_envelope(command, now, handled_event_id(command)),
        command_id=command.event_id,
        command_type=command.type,
        agent_id=command.agent_id,
        reason=reason,
        origin=command.origin,
    )


def customer_wrote(message: InboundMessage, ticket: KnownTicket, now: datetime) -> list[StatusChanged]:
    """A customer's message on a waiting or solved ticket reopens it."""
    if message.kind not in ("message", "edit") or ticket.status not in REOPENED_BY_CUSTOMER:
        return []
    return [
        StatusChanged(
            event_id=derived_id(message.message_id, "reopened"),
            occurred_at=now,
            ticket_id=message.ticket_id,
            correlation_id=str(message.message_id),
            traceparent=message.traceparent,
            from_status=ticket.status,
            to_status="open",
            actor=CUSTOMER,
            reason="the customer wrote",
            team=ticket.team,
            assignee_id=ticket.assignee_id,
            resolution=ticket.resolutions,
        )
    ]


def _check(command: AgentCommand, ticket: KnownTicket | None, config: DeskConfig) -> KnownTicket:
    """The command's ticket, once the actor may give this command at all and the ticket takes commands."""
    actor = command.agent_id
    if actor == CUSTOMER:
        # Besides rating: "this solved it" under suggested articles (services/knowledge/deflection.py).
        deflected = isinstance(command, SetStatus) and command.status == "solved" and command.reason == DEFLECTED
        if not isinstance(command, RateTicket) and not deflected:
            raise _Refused("the customer can only rate a ticket or say an article solved it")
    elif isinstance(command, RateTicket):
        raise _Refused("only the customer rates a ticket")
    elif actor == SYSTEM:
        # Timers of the SLA service: auto-close, and the escalation chains' escalate and raise priority.
        if not (isinstance(command, SetStatus) and command.status == "closed") and not isinstance(
            command, EscalateTicket | SetPriority
        ):
            raise _Refused("the system only closes solved tickets, escalates and raises priorities")
    elif actor != ADMIN and _agent(config, actor) is None:
        raise _Refused(f"agent {actor!r} is not configured")
    if ticket is None:
        raise _Refused(f"there is no ticket {command.ticket_id}")
    if ticket.status == "closed" and not isinstance(command, RateTicket):
        raise _Refused(f"{command.ticket_id} is closed")
    return ticket


class _Context:
    """One command being decided, with its ticket as the batch sees it (updated as its events are made)."""

    def __init__(
        self,
        command: Any,
        ticket: KnownTicket,
        tickets: Mapping[str, KnownTicket | None],
        config: DeskConfig,
        now: datetime,
    ):
        self.command = command
        self.ticket = ticket
        self.tickets = tickets
        self.config = config
        self.now = now

    @property
    def actor(self) -> str:
        return self.command.agent_id

    def envelope(self, step: str | None = None, ticket_id: str | None = None) -> dict[str, Any]:
        """The envelope of one event; the command's main event has no `step` (its ID is the handled one)."""
        event_id = handled_event_id(self.command) if step is None else derived_id(self.command.event_id, step)
        return _envelope(self.command, self.now, event_id, ticket_id)

    def queued(self, team: str, reason: str | None = None) -> TicketQueued:
        """The ticket handed, unassigned, to `team`'s queue (from its assignee, if any)."""
        return TicketQueued(
            **self.envelope(), team=team, actor=self.actor, previous_agent_id=self.ticket.assignee_id, reason=reason
        )

    def assigned(self, agent: Agent, step: str | None = None) -> TicketAssigned:
        return ticket_assigned(self.envelope(step), self.ticket, agent, self.actor)

    def status(
        self, to_status: TicketStatus, step: str | None = None, reason: str | None = None, **fields: Any
    ) -> StatusChanged:
        ticket = self.ticket
        return StatusChanged(
            **self.envelope(step),
            from_status=ticket.status,
            to_status=to_status,
            actor=self.actor,
            reason=reason,
            team=ticket.team,
            assignee_id=ticket.assignee_id,
            resolution=ticket.resolutions + (to_status == "solved"),
            **fields,
        )

    def opened(self, step: str | None = None) -> list[TicketEvent]:
        """A new ticket someone works on is open."""
        return [self.status("open", step)] if self.ticket.status == "new" else []


def _claim(context: _Context) -> list[TicketEvent]:
    agent = _agent(context.config, context.actor)
    if agent is None:
        raise _Refused("only an agent can claim a ticket: name one")
    if context.ticket.assignee_id == agent.id:
        # Claiming one's own ticket only says "I am on it": a new one opens.
        return context.opened()
    assigned = context.assigned(agent)
    context.ticket = replace(context.ticket, assignee_id=agent.id)
    return [assigned, *context.opened("opened")]


def _assign(context: _Context) -> list[TicketEvent]:
    command: AssignTicket = context.command
    ticket, actor = context.ticket, context.actor
    team = _team(context.config, ticket.team)
    if ticket.assignee_id not in (None, actor) and actor != ADMIN and (team is None or team.lead != actor):
        raise _Refused(f"only the assignee or the team lead can hand on {command.ticket_id}")
    if command.to_agent is not None:
        agent = _agent(context.config, command.to_agent)
        if agent is None:
            raise _Refused(f"agent {command.to_agent!r} is not configured")
        return [] if ticket.assignee_id == agent.id else [context.assigned(agent)]
    if _team(context.config, command.to_team) is None:
        raise _Refused(f"team {command.to_team!r} is not configured")
    if ticket.assignee_id is None and ticket.team == command.to_team:
        return []
    return [context.queued(command.to_team)]


def _reply(context: _Context) -> list[TicketEvent]:
    ticket = context.ticket
    reply = agent_reply(context.command, ticket.channel, ticket.reply_route, context.now)
    return [reply, *context.opened("opened")]


def _note(context: _Context) -> list[TicketEvent]:
    command: AgentNote = context.command
    return [_note_event(context, command.text, None, context.ticket)]


def _note_event(
    context: _Context, text: str, step: str | None, on: KnownTicket, ticket_id: str | None = None
) -> MessageAdded:
    """An internal note on the command's ticket (or `ticket_id`): never sent to the customer."""
    command = context.command
    return MessageAdded(
        **context.envelope(step, ticket_id),
        message_id=derived_id(command.event_id, f"{step or 'note'}_message"),
        author="agent",
        agent_id=context.actor,
        channel=on.channel,
        text=text,
        internal=True,
        origin=command.origin,
        received_at=command.occurred_at,
    )


def _set_status(context: _Context) -> list[TicketEvent]:
    command: SetStatus = context.command
    ticket = context.ticket
    if context.actor == SYSTEM and ticket.status != "solved":
        raise _Refused("the system only closes solved tickets")
    if command.resolution is not None and command.resolution != ticket.resolutions:
        raise _Refused(f"{command.ticket_id} was solved again since resolution {command.resolution}")
    if command.status == ticket.status:
        return []
    if not allowed_transition(ticket.status, command.status):
        raise _Refused(f"{command.ticket_id} cannot go from {ticket.status} to {command.status}")
    # The customer is asked for a rating when an agent (or an admin) solved the ticket after answering
    # them in public; never after a merge or an auto-close (issue #10).
    asks_rating = command.status == "solved" and context.actor not in (SYSTEM, CUSTOMER) and ticket.public_replies > 0
    return [
        context.status(command.status, reason=command.reason, csat_route=ticket.reply_route if asks_rating else None)
    ]


def _set_priority(context: _Context) -> list[TicketEvent]:
    command: SetPriority = context.command
    if command.priority == context.ticket.priority:
        return []
    return [
        PriorityChanged(
            **context.envelope(),
            from_priority=context.ticket.priority,
            to_priority=command.priority,
            actor=context.actor,
        )
    ]


def _tag(context: _Context) -> list[TicketEvent]:
    command: TagTicket = context.command
    before = set(context.ticket.tags)
    after = (before | set(command.add)) - set(command.remove)
    if after == before:
        return []
    return [
        TagsChanged(
            **context.envelope(),
            added=sorted(after - before),
            removed=sorted(before - after),
            tags=sorted(after),
            actor=context.actor,
        )
    ]


def _escalate(context: _Context) -> list[TicketEvent]:
    command: EscalateTicket = context.command
    ticket = context.ticket
    if command.to_team is not None:
        if _team(context.config, command.to_team) is None:
            raise _Refused(f"there is no team {command.to_team!r}")
        return [context.queued(command.to_team, reason=command.reason)]
    team = _team(context.config, ticket.team)
    chain = team.escalation_chain() if team else []
    level = ticket.escalation_level + 1
    if level > len(chain):
        raise _Refused(
            f"{command.ticket_id} is at the top of its escalation chain"
            if chain
            else f"team {ticket.team!r} has no escalation chain (no lead)"
        )
    agent = _agent(context.config, chain[level - 1])
    assert agent is not None  # the config's references are checked when it is loaded
    escalated = TicketEscalated(
        **context.envelope(), level=level, agent_id=agent.id, actor=context.actor, reason=command.reason
    )
    return [escalated] if ticket.assignee_id == agent.id else [escalated, context.assigned(agent, "assigned")]


def _merge(context: _Context) -> list[TicketEvent]:
    command: MergeTicket = context.command
    into = command.into_ticket_id
    if into == command.ticket_id:
        raise _Refused(f"{into} cannot be merged into itself")
    target = context.tickets.get(into)
    if target is None:
        raise _Refused(f"there is no ticket {into}")
    if target.status == "closed":
        raise _Refused(f"{into} is closed")
    subject = f" ({context.ticket.subject})" if context.ticket.subject else ""
    return [
        TicketMerged(**context.envelope(), into_ticket_id=into, actor=context.actor),
        context.status("closed", "closed", reason=f"merged into {into}"),
        _note_event(context, f"{command.ticket_id}{subject} was merged into this ticket.", "merge_note", target, into),
    ]


def _rate(context: _Context) -> list[TicketEvent]:
    command: RateTicket = context.command
    ticket = context.ticket
    if command.resolution > ticket.resolutions:
        raise _Refused(f"{command.ticket_id} has no resolution {command.resolution}")
    if command.resolution <= ticket.csat_resolution:
        raise _Refused(f"resolution {command.resolution} of {command.ticket_id} is already rated")
    return [
        CsatRated(
            **context.envelope(),
            resolution=command.resolution,
            score=command.score,
            comment=command.comment,
            team=ticket.team,
            assignee_id=ticket.assignee_id,
        )
    ]


_RULES: dict[type, Callable[[_Context], list[TicketEvent]]] = {
    ClaimTicket: _claim,
    AssignTicket: _assign,
    AgentReply: _reply,
    AgentNote: _note,
    SetStatus: _set_status,
    SetPriority: _set_priority,
    TagTicket: _tag,
    EscalateTicket: _escalate,
    MergeTicket: _merge,
    RateTicket: _rate,
}


def _envelope(command: AgentCommand, now: datetime, event_id: Any, ticket_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": now,
        "ticket_id": ticket_id or command.ticket_id,
        "correlation_id": command.correlation_id or str(command.event_id),
        "traceparent": command.traceparent,
    }


def _agent(config: DeskConfig, agent_id: str) -> Agent | None:
    return next((agent for agent in config.agents if agent.id == agent_id), None)


def _team(config: DeskConfig, team_id: str | None) -> Team | None:
    return next((team for team in config.teams if team.id == team_id), None)
