"""The SLA service's decisions over a batch of ticket events, in pure code.

Each ticket the service knows has a `TicketSla`: its policy, what chose the policy (priority, channel,
team, category) and its clocks (services.sla.clocks). An event moves the clocks; what changed is
announced as events — `sla.deadline_set` (a clock runs, with its due instant and why), `sla.met`,
`sla.paused`, `sla.stopped` — and the timers that announce warnings and breaches are scheduled or
cancelled to match. Every event ID is derived from the event that caused it, so a redelivered batch
decides the very same events, and `switchboard replay` rebuilds the clocks by deciding the log again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from services.sla.auto_close import METRIC as AUTO_CLOSE
from services.sla.auto_close import pending_auto_closes
from services.sla.clocks import BusinessCalendar, Clock, Targets, TicketClocks
from services.sla.deadlines import Timer
from services.sla.escalation import escalation_timers
from shared.config import DeskConfig
from shared.events import (
    SLA_METRICS,
    MessageAdded,
    PriorityChanged,
    SlaBreached,
    SlaDeadlineSet,
    SlaEscalated,
    SlaMet,
    SlaMetric,
    SlaPaused,
    SlaStopped,
    StatusChanged,
    TicketAssigned,
    TicketCreated,
    TicketEvent,
    TicketQueued,
)
from shared.ids import derived_id
from shared.sla_policies import SlaPolicy

SlaEvent = SlaDeadlineSet | SlaMet | SlaPaused | SlaStopped


@dataclass(frozen=True)
class TicketSla:
    """What the SLA service keeps of a ticket: its policy, the facts that chose it, and its clocks."""

    policy: str
    priority: str
    channel: str
    team: str
    category: str
    clocks: TicketClocks = field(default_factory=TicketClocks)
    # The contact's tags when the ticket was created (policies may match them); states stored before: none.
    contact_tags: tuple[str, ...] = ()


ticket_sla_adapter: TypeAdapter[TicketSla] = TypeAdapter(TicketSla)


@dataclass
class SlaDecision:
    events: list[SlaEvent] = field(default_factory=list)
    # The timers of each (ticket ID, metric) whose clock changed, as they are after the batch: they
    # replace that clock's earlier ones (none: its timers stop).
    timers: dict[tuple[str, str], list[Timer]] = field(default_factory=dict)
    # The tickets whose clocks changed, as they are now (None: forgotten, the ticket is closed).
    states: dict[str, TicketSla | None] = field(default_factory=dict)


def decide(events: list[TicketEvent], view: Mapping[str, TicketSla | None], config: DeskConfig) -> SlaDecision:
    """The clocks' changes the events cause, in order; `view` holds each ticket's state before the batch."""
    decision = SlaDecision()
    known: dict[str, TicketSla] = {}
    for event in events:
        before = known[event.ticket_id] if event.ticket_id in known else view.get(event.ticket_id)
        after, reason = _advance(before, event, config)
        if after is None or after == before:
            continue
        known[event.ticket_id] = decision.states[event.ticket_id] = after
        _announce(before.clocks if before else TicketClocks(), after, event, reason, config, decision)
        if after.clocks.status == "closed":
            decision.states[event.ticket_id] = None
    # A ticket whose status changed has one auto-close timer from now on, or none.
    changes = [event for event in events if isinstance(event, StatusChanged)]
    for ticket_id, timer in pending_auto_closes(changes, config.close_after).items():
        decision.timers[ticket_id, AUTO_CLOSE] = [timer] if timer is not None else []
    return decision


def calendars(policy: SlaPolicy, config: DeskConfig) -> dict[str, BusinessCalendar]:
    """The calendar each metric of the policy counts on."""
    return {metric: config.calendar(policy.calendar_of(metric)) for metric in SLA_METRICS}


def targets(policy: SlaPolicy, priority: str) -> Targets:
    return Targets(
        first_response=policy.target(priority, "first_response"),
        next_response=policy.target(priority, "next_response"),
        resolution=policy.target(priority, "resolution"),
        pause_on=frozenset(policy.pause_on),
    )


def _advance(state: TicketSla | None, event: TicketEvent, config: DeskConfig) -> tuple[TicketSla | None, str]:
    """The ticket's SLA state after `event`, and why it changed (None: a ticket the service does not know)."""
    if isinstance(event, TicketCreated):
        if state is not None:
            return state, ""
        policy = config.sla_policy_for(
            priority=event.priority,
            channel=event.channel,
            team=event.team,
            category=event.category,
            contact_tags=event.contact_tags,
        )
        fresh = TicketSla(
            policy.id, event.priority, event.channel, event.team, event.category, contact_tags=tuple(event.contact_tags)
        )
        on = calendars(policy, config)
        started = fresh.clocks.created(event.occurred_at, targets(policy, event.priority), event.ticket_id, on)
        return replace(fresh, clocks=started), "created"
    if state is None:
        return None, ""
    policy = _policy(state, config)
    clocks, aims, on = state.clocks, targets(policy, state.priority), calendars(policy, config)
    match event:
        case MessageAdded(author="customer", review=None, kind="message"):
            clocks, reason = clocks.customer_wrote(event.received_at, aims, str(event.message_id), on), "customer wrote"
        case MessageAdded(author="agent", internal=False):
            clocks, reason = clocks.agent_replied(event.received_at, on), "agent replied"
        case StatusChanged():
            clocks, reason = (
                clocks.status_changed(event.to_status, event.occurred_at, aims, on),
                f"status {event.to_status}",
            )
        case PriorityChanged():
            return _reclassified(replace(state, priority=event.to_priority), config), (
                f"priority changed to {event.to_priority}"
            )
        case TicketAssigned() | TicketQueued() if event.team != state.team:
            return _reclassified(replace(state, team=event.team), config), f"team changed to {event.team}"
        case SlaBreached():
            clocks, reason = clocks.breached(event.metric), ""
        case SlaEscalated():
            clocks, reason = clocks.escalated(event.metric, event.level), ""
        case _:
            return state, ""
    return replace(state, clocks=clocks), reason


def _policy(state: TicketSla, config: DeskConfig) -> SlaPolicy:
    # A policy since removed from the config: the one the ticket would get now.
    policy = next((policy for policy in config.sla_policies if policy.id == state.policy), None)
    return policy or config.sla_policy_for(
        priority=state.priority,
        channel=state.channel,
        team=state.team,
        category=state.category,
        contact_tags=state.contact_tags,
    )


def _reclassified(state: TicketSla, config: DeskConfig) -> TicketSla:
    """New facts about the ticket: the policy they choose now, and its targets on the same clocks."""
    policy = config.sla_policy_for(
        priority=state.priority,
        channel=state.channel,
        team=state.team,
        category=state.category,
        contact_tags=state.contact_tags,
    )
    on = calendars(policy, config)
    return replace(state, policy=policy.id, clocks=state.clocks.retargeted(targets(policy, state.priority), on))


def _announce(
    before: TicketClocks, after: TicketSla, cause: TicketEvent, reason: str, config: DeskConfig, decision: SlaDecision
) -> None:
    policy = _policy(after, config)
    for metric in SLA_METRICS:
        old, new = before.get(metric), after.clocks.get(metric)
        envelope = _envelope(cause, metric)
        if new is None:
            if old is not None and old.outcome is None:
                decision.events.append(
                    SlaStopped(**envelope("stopped"), metric=metric, reason=f"policy {policy.id} does not measure it")
                )
                decision.timers[cause.ticket_id, metric] = []
            continue
        calendar = calendars(policy, config)[metric]
        if new.outcome is not None and (old is None or old.outcome != new.outcome):
            decision.timers[cause.ticket_id, metric] = []
            if new.outcome == "met":
                decision.events.append(
                    SlaMet(
                        **envelope("met"),
                        metric=metric,
                        due_at=old.due_at(calendar) if old else None,
                        met_at=new.finished_at,
                    )
                )
            else:
                decision.events.append(SlaStopped(**envelope("stopped"), metric=metric, reason=reason))
        elif new.paused and not (old is not None and old.paused):
            decision.timers[cause.ticket_id, metric] = []
            decision.events.append(
                SlaPaused(**envelope("paused"), metric=metric, used_seconds=new.used.total_seconds(), reason=reason)
            )
        elif new.running and _moved(old, new):
            deadline, timers = _deadline(new, metric, policy, calendar, envelope("deadline"), reason)
            decision.events.append(deadline)
            decision.timers[cause.ticket_id, metric] = timers


def reconcile(
    states: Mapping[str, TicketSla],
    announced: Mapping[tuple[str, str], datetime | None],
    config: DeskConfig,
    now: datetime,
) -> SlaDecision:
    """The clocks of `states` under the config as it is now (after a change of policies or calendars): each
    ticket's policy chosen again, its targets and calendars applied from each clock's original start. A
    running clock whose due instant is no longer the one `announced` (ticket, metric → the read model's) is
    announced again (`sla.deadline_set`, reason "config changed") with its timers; one the policy no longer
    measures stops. Event IDs derive from the ticket, metric and new due instant: instances starting
    together announce the same events."""
    decision = SlaDecision()
    for ticket_id, state in states.items():
        after = _reclassified(state, config)
        policy = _policy(after, config)
        on = calendars(policy, config)
        for metric in SLA_METRICS:
            old, new = state.clocks.get(metric), after.clocks.get(metric)
            if new is None or not new.running:
                if old is not None and old.running and new is None:
                    envelope = _reconciled(ticket_id, metric, "stopped", now)
                    reason = f"policy {policy.id} does not measure it"
                    decision.events.append(SlaStopped(**envelope, metric=metric, reason=reason))
                    decision.timers[ticket_id, metric] = []
                continue
            due = new.due_at(on[metric])
            if due is not None and due == announced.get((ticket_id, metric)) and old == new:
                continue
            envelope = _reconciled(ticket_id, metric, f"deadline {due.isoformat() if due else ''}", now)
            deadline, timers = _deadline(new, metric, policy, on[metric], envelope, "config changed")
            decision.events.append(deadline)
            decision.timers[ticket_id, metric] = timers
        if after != state:
            decision.states[ticket_id] = after
    return decision


def _reconciled(ticket_id: str, metric: str, what: str, now: datetime) -> dict[str, Any]:
    return {"event_id": derived_id(ticket_id, metric, "reconciled", what), "occurred_at": now, "ticket_id": ticket_id}


def _moved(old: Clock | None, new: Clock) -> bool:
    """Whether a running clock's due instant may differ from what was announced."""
    if old is None or not old.running:
        return True
    return (old.target, old.cause, old.running_since, old.used) != (new.target, new.cause, new.running_since, new.used)


def _deadline(
    clock: Clock, metric: SlaMetric, policy: SlaPolicy, calendar: BusinessCalendar, envelope: dict, reason: str
) -> tuple[SlaDeadlineSet, list[Timer]]:
    due = clock.due_at(calendar)
    assert due is not None, "a running clock has a due instant"
    warnings = clock.warnings(policy.warn_at, calendar)
    deadline = SlaDeadlineSet(
        **envelope,
        metric=metric,
        policy=policy.id,
        due_at=due,
        warnings_at=[instant for _, instant in warnings],
        reason=reason,
        target_seconds=clock.target.total_seconds(),
        used_seconds=clock.used.total_seconds(),
    )
    common = {
        "ticket_id": deadline.ticket_id,
        "metric": metric,
        "due_at": due.isoformat(),
        "correlation_id": deadline.correlation_id,
    }
    timers = [
        Timer(kind="warning", fires_at=instant.timestamp(), fraction=fraction, **common)
        for fraction, instant in warnings
    ]
    if not clock.breached:
        # At most one breach per clock (a next-response clock is one customer message's).
        timers.append(Timer(kind="breach", fires_at=due.timestamp(), fraction=1.0, **common))
    timers += escalation_timers(clock, metric, policy, calendar, [instant for _, instant in warnings], common)
    return deadline, timers


def _envelope(cause: TicketEvent, metric: str):
    def of(kind: str) -> dict:
        return {
            "event_id": derived_id(cause.event_id, metric, kind),
            "occurred_at": cause.occurred_at,
            "ticket_id": cause.ticket_id,
            "correlation_id": cause.correlation_id,
            "traceparent": cause.traceparent,
        }

    return of
