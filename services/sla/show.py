"""A ticket's SLA clocks as people read them (`switchboard sla show`, the read API's `sla.clocks`). Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.sla.decide import TicketSla, calendars
from shared.calendars import ALWAYS_OPEN_ID
from shared.config import DeskConfig
from shared.events import SLA_METRICS


def clock_rows(state: TicketSla, config: DeskConfig, now: datetime) -> list[dict[str, Any]]:
    """One row per clock of the ticket, as of `now`: durations as `H:MM:SS` strings, instants ISO 8601."""
    policy = next((policy for policy in config.sla_policies if policy.id == state.policy), None)
    on = calendars(policy, config) if policy is not None else {}
    rows = []
    for metric in SLA_METRICS:
        if (clock := state.clocks.get(metric)) is None:
            continue
        calendar = on.get(metric) or config.calendar(ALWAYS_OPEN_ID)
        as_of = clock.finished_at or now
        used = clock.used_at(as_of, calendar)
        paused = clock.paused_for + (now - clock.paused_since if clock.paused_since else timedelta(0))
        due = clock.due_at(calendar)
        rows.append(
            {
                "metric": metric,
                "state": clock.state(as_of, calendar),
                "target": _spoken(clock.target),
                "due": due.isoformat() if due else None,
                "used": _spoken(used),
                "remaining": _spoken(max(clock.target - used, timedelta(0))),
                "paused": _spoken(paused),
            }
        )
    return rows


def _spoken(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
