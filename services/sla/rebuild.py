"""The SLA service's Redis state rebuilt from the ticket topic alone (for `switchboard replay`). Pure.

The log is decided again, event by event, exactly as the live service decided it (services.sla.decide):
that gives every ticket's clocks and the timers each clock change scheduled or cancelled. A warning
or breach already announced in the log is not scheduled again; what remains is: a timer whose time
passed while Redis was gone fires once, right after the replay (an auto-close asked for twice is one
command: its ID is derived).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.sla.deadlines import Timer
from services.sla.decide import TicketSla, decide
from shared.config import DeskConfig
from shared.events import SlaBreached, SlaWarning, TicketEvent


@dataclass
class TimerRebuild:
    config: DeskConfig
    states: dict[str, TicketSla | None] = field(default_factory=dict)
    # Each clock's timers, (ticket ID, metric) → timers, as the live service last scheduled them.
    timers: dict[tuple[str, str], list[Timer]] = field(default_factory=dict)
    # (ticket, metric, kind, fraction, due) of every announcement made.
    fired: set[tuple[str, str, str, float, str]] = field(default_factory=set)

    def observe(self, event: TicketEvent) -> None:
        match event:
            case SlaWarning():
                self.fired.add((event.ticket_id, event.metric, "warning", event.fraction, event.due_at.isoformat()))
            case SlaBreached():
                self.fired.add((event.ticket_id, event.metric, "breach", 1.0, event.due_at.isoformat()))
        decision = decide([event], self.states, self.config)
        for clock, timers in decision.timers.items():
            self.timers[clock] = timers
        for ticket_id, state in decision.states.items():
            if state is None:
                self.states.pop(ticket_id, None)
            else:
                self.states[ticket_id] = state

    def pending(self) -> list[Timer]:
        return [
            timer
            for timers in self.timers.values()
            for timer in timers
            if (timer.ticket_id, timer.metric, timer.kind, timer.fraction, timer.due_at) not in self.fired
        ]

    def open_states(self) -> dict[str, TicketSla]:
        """The clocks of every ticket not yet closed."""
        return {ticket_id: state for ticket_id, state in self.states.items() if state is not None}
