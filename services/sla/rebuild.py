"""The SLA timers still to fire, rebuilt from the ticket topic alone (for `switchboard replay`). Pure.

A deadline event names its warnings and its due time; a warning or breach event says that timer
fired; a met clock stops them all, and so does solving or closing the ticket. A ticket's last status
change says whether it waits to be closed automatically (solved) and since when; `close_after` comes
from the config, as in the live service. What remains is scheduled again: a timer whose time passed
while Redis was gone fires once, right after the replay (an auto-close asked for twice is one
command: its ID is derived).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from services.sla.auto_close import pending_auto_closes
from services.sla.deadlines import Timer, timers_for
from shared.events import SlaBreached, SlaDeadlineSet, SlaMet, SlaWarning, StatusChanged, TicketEvent


@dataclass
class TimerRebuild:
    close_after: timedelta
    deadlines: dict[tuple[str, str], SlaDeadlineSet] = field(default_factory=dict)
    # (ticket, metric, kind, fraction, due) of every announcement made.
    fired: set[tuple[str, str, str, float, str]] = field(default_factory=set)
    met: set[tuple[str, str]] = field(default_factory=set)
    auto_close: dict[str, Timer | None] = field(default_factory=dict)

    def observe(self, event: TicketEvent) -> None:
        match event:
            case SlaDeadlineSet():
                self.deadlines[(event.ticket_id, event.metric)] = event
            case SlaWarning():
                self.fired.add((event.ticket_id, event.metric, "warning", event.fraction, event.due_at.isoformat()))
            case SlaBreached():
                self.fired.add((event.ticket_id, event.metric, "breach", 1.0, event.due_at.isoformat()))
            case SlaMet():
                self.met.add((event.ticket_id, event.metric))
            case StatusChanged():
                self.auto_close.update(pending_auto_closes([event], self.close_after))
                if event.to_status in ("solved", "closed"):
                    # As the live service does: a finished ticket's first-response clock stops.
                    self.met.add((event.ticket_id, "first_response"))

    def pending(self) -> list[Timer]:
        clocks = [
            timer
            for clock, deadline in self.deadlines.items()
            if clock not in self.met
            for timer in timers_for(deadline)
            if (timer.ticket_id, timer.metric, timer.kind, timer.fraction, timer.due_at) not in self.fired
        ]
        return clocks + [timer for timer in self.auto_close.values() if timer is not None]
