"""Team queues in pure code: what the dispatcher asks for, and whether the router still grants it.

The dispatcher (services/router/dispatcher.py) reads the queues and the agents' state and `plan`s
`command.assign` commands with the actor "system": a queued ticket to the agent `assignment.choose`
picks, or a ticket of an agent away longer than `assignment.away_grace` back to its team's queue
(they stay its preferred assignee). Command IDs are derived from what they decide, so router
instances sweeping at once ask for the same thing under the same ID (a command is applied once).
The router applies such a command in the ticket's partition order only while it still holds
(`system_assign`): the ticket still queued and the agent still eligible, or the assignee still away;
otherwise it is dropped silently, nobody having asked for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from services.router.assignment import WORKING_STATUSES, Desk, Need, QueuedTicket, choose, ineligibility, queue_order
from services.router.lifecycle import SYSTEM
from services.router.tickets import handled_event_id, ticket_assigned
from shared.config import DeskConfig
from shared.events import AssignTicket, TicketAssigned, TicketEvent, TicketQueued
from shared.ids import derived_id

if TYPE_CHECKING:
    from services.router.decide import KnownTicket


@dataclass(frozen=True)
class AgentWork:
    """An agent's state for the dispatcher: since when they are away (None: available), their tickets in
    new or open, by ticket ID → team, and whether their working hours were closed throughout the grace
    period (their shift ended)."""

    away_since: datetime | None
    working: Mapping[str, str]
    off_shift: bool = False


def plan(
    queues: Mapping[str, Sequence[QueuedTicket]],
    agents: Mapping[str, AgentWork],
    desk: Desk,
    config: DeskConfig,
    now: datetime,
) -> list[AssignTicket]:
    """The system's `command.assign`s: first the tickets of agents away longer than the grace period
    back to their teams' queues, then each team's queue (config order) served in `queue_order`, each
    ticket to the agent `choose` picks against the loads as the earlier choices of this plan left them
    (a ticket nobody may take waits; the ones behind it are still served)."""
    team_ids = {team.id for team in config.teams}
    commands = [
        AssignTicket(
            event_id=derived_id("requeue", ticket_id, agent_id, since),
            occurred_at=now,
            ticket_id=ticket_id,
            agent_id=SYSTEM,
            to_team=team,
        )
        for agent_id, work in agents.items()
        if (since := _gone_since(work, now, config)) is not None
        for ticket_id, team in sorted(work.working.items())
        if team in team_ids
    ]
    loads, last_assigned, turns = dict(desk.loads), dict(desk.last_assigned), dict(desk.turns)
    for team in config.teams:
        for ticket in queue_order(queues.get(team.id, ())):
            need = Need(
                team.id,
                ticket.skills,
                ticket.language,
                relax_skills=now - ticket.queued_at >= team.skills_timeout,
                preferred=ticket.preferred,
            )
            choice = choose(need, replace(desk, loads=loads, last_assigned=last_assigned, turns=turns), config)
            if (agent_id := choice.agent_id) is None:
                continue
            loads[agent_id] = loads.get(agent_id, 0) + 1
            last_assigned[agent_id] = now.timestamp()
            turns[team.id] = turns.get(team.id, 0) + 1
            commands.append(
                AssignTicket(
                    event_id=derived_id("dispatch", ticket.ticket_id, ticket.queued_at.isoformat(), agent_id),
                    occurred_at=now,
                    ticket_id=ticket.ticket_id,
                    agent_id=SYSTEM,
                    to_agent=agent_id,
                )
            )
    return commands


def _gone_since(work: AgentWork, now: datetime, config: DeskConfig) -> str | None:
    """What names the agent's absence in the requeue command IDs, once it lasted the grace period: since
    when they are away, or (their shift over) the day; None while they are at work."""
    if work.away_since is not None and now - work.away_since >= config.assignment.away_grace:
        return work.away_since.isoformat()
    if work.off_shift:
        return f"off shift {now.date().isoformat()}"
    return None


def system_assign(
    command: AssignTicket, ticket: KnownTicket | None, desk: Desk, config: DeskConfig, now: datetime
) -> list[TicketEvent]:
    """The events of the dispatcher's command if it still holds, else none: a queued ticket (unassigned, in
    new or open) goes to an agent still a member of its team, available and under capacity; an assigned
    one (new or open) goes back to its team's queue while its assignee is still away."""
    team_ids = {team.id for team in config.teams}
    if ticket is None or ticket.status not in WORKING_STATUSES:
        return []
    envelope = {
        "event_id": handled_event_id(command),
        "occurred_at": now,
        "ticket_id": command.ticket_id,
        "correlation_id": str(command.event_id),
    }
    if command.to_agent is not None:
        if ticket.assignee_id is not None or command.to_agent not in {agent.id for agent in config.agents}:
            return []
        if ticket.team not in team_ids:
            return []
        # Skills and language were the dispatcher's to weigh; what changes from moment to moment is checked again.
        if ineligibility(command.to_agent, Need(ticket.team, relax_skills=True), desk, config) is not None:
            return []
        return [ticket_assigned(envelope, ticket, config.agent(command.to_agent), SYSTEM)]
    assignee = ticket.assignee_id
    gone = assignee is not None and (
        assignee in desk.away or (desk.on_shift is not None and assignee not in desk.on_shift)
    )
    if not gone or command.to_team not in team_ids:
        return []
    return [
        TicketQueued(
            **envelope,
            team=command.to_team,
            actor=SYSTEM,
            previous_agent_id=assignee,
            preferred_agent_id=assignee,
            reason=f"{assignee} is away" if assignee in desk.away else f"{assignee}'s shift is over",
        )
    ]


def flag_over_capacity(
    events: list[TicketEvent], tickets: Mapping[str, KnownTicket | None], desk: Desk, config: DeskConfig
) -> list[TicketEvent]:
    """`events` with `over_capacity` set on each assignment an agent (claiming, handing on, escalating)
    made of a new or open ticket to someone already at or over their capacity: allowed, and shown."""
    flagged: list[TicketEvent] = []
    for event in events:
        ticket = tickets.get(event.ticket_id)
        if (
            isinstance(event, TicketAssigned)
            and ticket is not None
            and ticket.status in WORKING_STATUSES
            and event.agent_id in {agent.id for agent in config.agents}
            and desk.loads.get(event.agent_id, 0) >= config.agent(event.agent_id).capacity
        ):
            event = event.model_copy(update={"over_capacity": True})
        flagged.append(event)
    return flagged
