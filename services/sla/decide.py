"""The SLA service's decisions over a batch of ticket events, in pure code.

A ticket opened in the batch gets its first-response deadline (and the timers that announce it);
the first public agent reply meets it (and cancels the timers); an internal note never does (SPEC
§3 SLA: notes never count). `ClockView` is what Redis knew when the batch was read, updated as the
batch is decided, so a ticket opened and answered in the same batch is handled in order. A status
change sets or stops the ticket's auto-close timer (services.sla.auto_close); that needs no view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.sla.auto_close import pending_auto_closes
from services.sla.deadlines import Timer, first_response_deadline, first_response_met, timers_for
from shared.config import DeskConfig, SlaPolicy
from shared.events import MessageAdded, SlaDeadlineSet, SlaMet, StatusChanged, TicketCreated, TicketEvent


@dataclass
class FirstResponseClock:
    status: str | None  # "running", "warning", "breached", "met", "stopped" or None (no clock)
    due_at: datetime | None


@dataclass
class ClockView:
    first_response: dict[str, FirstResponseClock] = field(default_factory=dict)


@dataclass
class SlaDecision:
    events: list[SlaDeadlineSet | SlaMet] = field(default_factory=list)
    schedule: list[Timer] = field(default_factory=list)
    # (ticket ID, metric) whose timers stop.
    cancel: list[tuple[str, str]] = field(default_factory=list)
    # Tickets whose status changed, with their one auto-close timer from now on (None: none).
    auto_close: dict[str, Timer | None] = field(default_factory=dict)


def policy_for(team_id: str, config: DeskConfig) -> SlaPolicy:
    """The team's policy; a team since removed from the config falls back to the default team's."""
    team = next((team for team in config.teams if team.id == team_id), None)
    if team is None:
        team = config.team(config.default_classification.team)
    return config.sla_policy(team.sla_policy)


def decide(events: list[TicketEvent], view: ClockView, config: DeskConfig) -> SlaDecision:
    decision = SlaDecision()
    for event in events:
        match event:
            case TicketCreated():
                # Deterministic: a redelivered creation yields the same deadline event again.
                deadline = first_response_deadline(event, policy_for(event.team, config))
                decision.events.append(deadline)
                clock = view.first_response.get(event.ticket_id)
                if clock is None or clock.status not in ("met", "stopped"):
                    decision.schedule += timers_for(deadline)
                    view.first_response[event.ticket_id] = FirstResponseClock("running", deadline.due_at)
            # An internal note is not an answer to the customer.
            case MessageAdded(author="agent", internal=False):
                clock = view.first_response.get(event.ticket_id)
                if clock is not None and clock.status == "met":
                    continue
                due = clock.due_at if clock else None
                decision.events.append(first_response_met(event, due))
                decision.cancel.append((event.ticket_id, "first_response"))
                view.first_response[event.ticket_id] = FirstResponseClock("met", due)
            # Solved or closed (merged) without an answer: nobody is waiting for one any more, so its
            # warnings and breach would only page the lead about a finished ticket.
            case StatusChanged(to_status="solved" | "closed"):
                clock = view.first_response.get(event.ticket_id)
                if clock is None or clock.status != "met":
                    decision.cancel.append((event.ticket_id, "first_response"))
                    view.first_response[event.ticket_id] = FirstResponseClock(
                        "stopped", clock.due_at if clock else None
                    )
    changes = [event for event in events if isinstance(event, StatusChanged)]
    decision.auto_close = pending_auto_closes(changes, config.close_after)
    return decision
