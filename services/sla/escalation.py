"""SLA escalation chains (issue #12, item 4). Pure: no I/O.

A policy's `escalation` levels each get a timer beside a running clock's warnings and breach: at the
clock's first warning, at its breach, or a business duration after the breach (on the clock's
calendar). Like the warnings, they go when the clock is met, paused, stopped or recomputed; a level
that fired is recorded on the clock (from its `sla.escalated` event), so it never fires twice for the
same clock. Firing resolves whom to tell and asks the router, as the actor "system", to escalate the
ticket up its team's chain (`command.escalate`) or to raise its priority (`command.set_priority`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from services.sla.clocks import BusinessCalendar, Clock
from services.sla.deadlines import Timer
from shared.config import DeskConfig
from shared.events import AgentCommand, EscalateTicket, SetPriority, SlaEscalated, SlaMetric
from shared.ids import derived_id
from shared.sla_policies import EscalationLevel, SlaPolicy

SYSTEM = "system"
PRIORITIES = ("low", "normal", "high", "urgent")
SLACK_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,}$")


def escalation_timers(
    clock: Clock,
    metric: SlaMetric,
    policy: SlaPolicy,
    calendar: BusinessCalendar,
    warnings: Sequence[datetime],
    common: Mapping[str, object],
) -> list[Timer]:
    """The timers of the policy's levels that watch `metric` and have not fired for this clock. A level at
    the warning waits for the clock's first warning still ahead (none ahead: it does not fire)."""
    due = clock.due_at(calendar)
    assert due is not None, "a running clock has a due instant"
    timers = []
    for number, level in enumerate(policy.escalation, start=1):
        if number in clock.escalated or (level.metrics is not None and metric not in level.metrics):
            continue
        if level.at == "warning":
            if not warnings:
                continue
            fires_at = warnings[0]
        elif level.at == "breach":
            fires_at = due
        else:
            fires_at = calendar.add_business_time(due, level.at)
        timers.append(
            Timer(
                kind="escalation", fires_at=fires_at.timestamp(), fraction=1.0, level=number, policy=policy.id, **common
            )  # type: ignore[arg-type]
        )
    return timers


def fire(
    timer: Timer, ticket: Mapping[str, str | None], config: DeskConfig, now: datetime
) -> tuple[SlaEscalated | None, list[AgentCommand]]:
    """What an escalation timer does for the ticket as the read model has it (`team`, `assignee_id`,
    `priority`): the event, and the commands for the router. None when its policy or level is gone."""
    policy = next((policy for policy in config.sla_policies if policy.id == timer.policy), None)
    if policy is None or timer.level is None or timer.level > len(policy.escalation):
        return None, []
    level = policy.escalation[timer.level - 1]
    key = (timer.ticket_id, timer.metric, "escalation", timer.level, timer.due_at)
    envelope = {
        "occurred_at": now,
        "ticket_id": timer.ticket_id,
        "correlation_id": timer.correlation_id,
    }
    commands: list[AgentCommand] = []
    reason = f"{timer.metric.replace('_', ' ')} SLA, escalation level {timer.level} ({level.label()})"
    if level.reassign is not None:
        # "queue": back to its own team's queue; a team ID: to that team's.
        to_team = {"lead": None, "queue": ticket.get("team")}.get(level.reassign, level.reassign)
        escalate_id = derived_id(*key, "escalate")
        commands.append(
            EscalateTicket(**envelope, event_id=escalate_id, agent_id=SYSTEM, reason=reason, to_team=to_team)
        )
    raised = _raised(ticket.get("priority")) if level.raise_priority else None
    if raised is not None:
        commands.append(
            SetPriority(**envelope, event_id=derived_id(*key, "priority"), agent_id=SYSTEM, priority=raised)
        )
    users, channels = _recipients(level, ticket, config)
    event = SlaEscalated(
        **envelope,
        event_id=derived_id(*key),
        metric=timer.metric,  # type: ignore[arg-type]
        level=timer.level,
        trigger=level.label(),
        due_at=datetime.fromisoformat(timer.due_at),
        notify_users=users,
        notify_channels=channels,
        reassigned_to=level.reassign,
        raised_to=raised,
    )
    return event, commands


def _raised(priority: str | None) -> str | None:
    if priority not in PRIORITIES or priority == PRIORITIES[-1]:
        return None
    return PRIORITIES[PRIORITIES.index(priority) + 1]


def _recipients(
    level: EscalationLevel, ticket: Mapping[str, str | None], config: DeskConfig
) -> tuple[list[str], list[str]]:
    """Slack users to mention in the ticket's thread and Slack channels to post in, in config order."""
    agents = {agent.id: agent for agent in config.agents}
    team = next((team for team in config.teams if team.id == ticket.get("team")), None)
    users: list[str] = []
    channels: list[str] = []
    for target in level.notify:
        if SLACK_CHANNEL.match(target):
            channels.append(target)
            continue
        agent_id = {"assignee": ticket.get("assignee_id"), "lead": team.lead if team else None}.get(target, target)
        if agent_id in agents and agents[agent_id].slack_user_id not in users:
            users.append(agents[agent_id].slack_user_id)
    return users, channels
