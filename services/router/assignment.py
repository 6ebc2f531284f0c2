"""Choosing the agent who gets a ticket, and the order team queues are served in. Pure: no I/O.

Rules (SPEC §3 Router, issue #11): an agent is eligible for a ticket when they are a member of its
team, available (not `/sb away`), on shift, under capacity (`capacity` counts their tickets in `new` and
`open`; `pending` and `on_hold` do not), hold every skill the ticket requires (unless the requirement is
relaxed: the ticket waited the team's `skills_timeout`) and speak its language when any member of the
team does. Among the eligible, the team's `routing` decides:
- `round_robin`: the first eligible member from the team's turn on (turns count from 0 and wrap);
- `least_loaded`: the lowest load / capacity, ties to whoever waited longest since their last assignment;
- `skills`: the most of the required skills held, then as `least_loaded`.
A preferred assignee (the agent a ticket was taken from when they went away) gets it whenever eligible.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.config import DeskConfig, Team

# The statuses an agent's capacity counts.
WORKING_STATUSES = frozenset({"new", "open"})
# Queue order: the most urgent first.
PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


@dataclass(frozen=True)
class Need:
    """What a ticket asks of its assignee: its team, required skills and language (both may be empty)."""

    team: str
    skills: tuple[str, ...] = ()
    language: str | None = None
    relax_skills: bool = False
    preferred: str | None = None


@dataclass(frozen=True)
class Desk:
    """The agents' state a choice is made against.

    `loads`: each agent's tickets in `new`/`open` (absent: 0); `away`: agents who said `/sb away`;
    `on_shift`: agents inside their working hours (None: everyone); `last_assigned`: when each agent
    was last given a ticket, in seconds since the epoch (absent: never); `turns`: each team's
    round-robin counter.
    """

    loads: Mapping[str, int] = field(default_factory=dict)
    away: Collection[str] = frozenset()
    on_shift: Collection[str] | None = None
    last_assigned: Mapping[str, float] = field(default_factory=dict)
    turns: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    """The agent chosen (None: nobody is eligible, the ticket waits in its team's queue), the eligible
    members in the order the strategy ranks them, and why each member who was not chosen was not."""

    agent_id: str | None
    eligible: tuple[str, ...]
    passed_over: dict[str, str]

    @property
    def queued_reason(self) -> str:
        """Why nobody got the ticket, in plain words (for `ticket.queued`)."""
        if not self.passed_over:
            return "the team has no members"
        reasons = sorted(set(self.passed_over.values()))
        return "no member is eligible: " + "; ".join(reasons)


def ineligibility(agent_id: str, need: Need, desk: Desk, config: DeskConfig) -> str | None:
    """Why `agent_id` may not take a ticket needing `need`, or None when they may (the first check that
    fails, in the order of the module's rules)."""
    team = config.team(need.team)
    agent = config.agent(agent_id)
    if agent_id not in team.members:
        return f"not a member of {team.id}"
    if agent_id in desk.away:
        return "away"
    if desk.on_shift is not None and agent_id not in desk.on_shift:
        return "off shift"
    load = desk.loads.get(agent_id, 0)
    if load >= agent.capacity:
        return f"at capacity ({load}/{agent.capacity})"
    missing = [skill for skill in need.skills if skill not in agent.skills]
    if missing and not need.relax_skills:
        return f"lacks skill {', '.join(missing)}"
    if need.language and need.language not in agent.languages and _team_speaks(team, need.language, config):
        return f"does not speak {need.language}"
    return None


def choose(need: Need, desk: Desk, config: DeskConfig) -> Choice:
    """The agent who gets a ticket needing `need` under the team's strategy, or None, with the reasons."""
    team = config.team(need.team)
    passed_over: dict[str, str] = {}
    eligible: list[str] = []
    for member in team.members:
        if (reason := ineligibility(member, need, desk, config)) is None:
            eligible.append(member)
        else:
            passed_over[member] = reason
    ranked = _rank(team, eligible, need, desk, config)
    if not ranked:
        return Choice(None, (), passed_over)
    chosen = need.preferred if need.preferred in ranked else ranked[0]
    for member in ranked:
        if member != chosen:
            passed_over[member] = _why_not_first(member, chosen, team, need, desk, config)
    return Choice(chosen, tuple(ranked), passed_over)


def _team_speaks(team: Team, language: str, config: DeskConfig) -> bool:
    return any(language in config.agent(member).languages for member in team.members)


def _rank(team: Team, eligible: list[str], need: Need, desk: Desk, config: DeskConfig) -> list[str]:
    if team.routing == "round_robin":
        start = desk.turns.get(team.id, 0) % len(team.members)
        rotation = [*team.members[start:], *team.members[:start]]
        return [member for member in rotation if member in eligible]
    order = {member: index for index, member in enumerate(team.members)}

    def key(member: str) -> tuple[float, ...]:
        least_loaded = (
            desk.loads.get(member, 0) / config.agent(member).capacity,
            desk.last_assigned.get(member, -math.inf),
            order[member],
        )
        if team.routing == "skills":
            held = sum(skill in config.agent(member).skills for skill in need.skills)
            return (-held, *least_loaded)
        return least_loaded

    return sorted(eligible, key=key)


def _why_not_first(member: str, chosen: str, team: Team, need: Need, desk: Desk, config: DeskConfig) -> str:
    if chosen == need.preferred:
        return f"eligible; {chosen} is the preferred assignee"
    if team.routing == "round_robin":
        return f"eligible; {chosen} is next in turn"
    loads = {agent: f"{desk.loads.get(agent, 0)}/{config.agent(agent).capacity}" for agent in (member, chosen)}
    if team.routing == "skills":
        held = {agent: sum(skill in config.agent(agent).skills for skill in need.skills) for agent in (member, chosen)}
        if held[member] != held[chosen]:
            return f"eligible; {chosen} holds more of the required skills"
    if (
        desk.loads.get(member, 0) / config.agent(member).capacity
        != desk.loads.get(chosen, 0) / config.agent(chosen).capacity
    ):
        return f"eligible; load {loads[member]}, {chosen} has {loads[chosen]}"
    return f"eligible; same load, {chosen} waited longer since their last ticket"


@dataclass(frozen=True)
class QueuedTicket:
    """A ticket waiting in a team queue: what its order and its assignment need (from its read-model HASH).

    `queued_at` starts its wait (the `ticket.queued`, else its creation), `due_at` its first-response
    deadline when the SLA service set one."""

    ticket_id: str
    team: str
    priority: str
    created_at: datetime
    queued_at: datetime
    due_at: datetime | None = None
    skills: tuple[str, ...] = ()
    language: str | None = None
    preferred: str | None = None


def queue_order(tickets: Iterable[QueuedTicket]) -> list[QueuedTicket]:
    """The order a queue is served in: priority (urgent, high, normal, low), then the SLA due time (a
    ticket with none after those with one), then age (oldest first), then ticket ID (a total order)."""

    def key(ticket: QueuedTicket) -> tuple[int, bool, float, float, str]:
        due = ticket.due_at.timestamp() if ticket.due_at else 0.0
        return (
            PRIORITY_RANK.get(ticket.priority, PRIORITY_RANK["normal"]),
            ticket.due_at is None,
            due,
            ticket.created_at.timestamp(),
            ticket.ticket_id,
        )

    return sorted(tickets, key=key)


def on_shift(config: DeskConfig, now: datetime) -> frozenset[str]:
    """The agents inside their working hours at `now`: their `calendar` is open (none: always at work)."""
    return frozenset(
        agent.id for agent in config.agents if agent.calendar is None or config.calendar(agent.calendar).is_open(now)
    )


def off_shift_throughout(config: DeskConfig, now: datetime, grace: timedelta) -> frozenset[str]:
    """The agents whose working hours had no open time at all in the `grace` before `now`."""
    return frozenset(
        agent.id
        for agent in config.agents
        if agent.calendar is not None and not config.calendar(agent.calendar).business_time(now - grace, now)
    )
