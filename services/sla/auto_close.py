"""Auto-close of solved tickets (SPEC §3 Lifecycle: `solved` tickets close after `close_after`). Pure: no I/O.

A ticket that becomes solved gets one auto-close timer, due `close_after` after the change; any
later change to another status (a reopen, a close by hand or by a merge) stops it, and solving the
ticket again replaces it. When it fires, the SLA service asks the router to close the ticket with a
`SetStatus` command whose ID is derived from the ticket and its resolution, so that a timer firing
twice (a redelivered batch, a lease run out, a replay) asks once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from services.sla.deadlines import Timer
from shared.durations import spoken
from shared.events import SetStatus, StatusChanged
from shared.ids import derived_id

METRIC = "auto_close"
SYSTEM = "system"


def auto_close_timer(solved: StatusChanged, close_after: timedelta) -> Timer:
    due = solved.occurred_at + close_after
    return Timer(
        ticket_id=solved.ticket_id,
        metric=METRIC,
        kind="close",
        due_at=due.isoformat(),
        fires_at=due.timestamp(),
        fraction=1.0,
        correlation_id=solved.correlation_id,
        resolution=solved.resolution,
    )


def pending_auto_closes(changes: Iterable[StatusChanged], close_after: timedelta) -> dict[str, Timer | None]:
    """Each ticket whose status changed, with its auto-close timer after the changes (in log order):
    the timer of its last solve if it is still solved, else None (no timer)."""
    pending: dict[str, Timer | None] = {}
    for change in changes:
        pending[change.ticket_id] = auto_close_timer(change, close_after) if change.to_status == "solved" else None
    return pending


def still_solved(timer: Timer, status: str | None, resolutions: str | None) -> bool:
    """Whether the ticket may still be closed by `timer`, as far as the read model (`status`,
    `resolutions`) knows. A read model that has not caught up with the solve yet says yes: the router
    refuses to close a ticket that is not solved, so the read model only spares it needless commands."""
    seen = int(resolutions or 0)
    if status is None or seen < (timer.resolution or 0):
        return True
    return seen == timer.resolution and status == "solved"


def close_command(timer: Timer, now: datetime, close_after: timedelta) -> SetStatus:
    return SetStatus(
        event_id=derived_id(timer.ticket_id, METRIC, timer.resolution),
        occurred_at=now,
        ticket_id=timer.ticket_id,
        correlation_id=timer.correlation_id,
        agent_id=SYSTEM,
        status="closed",
        reason=f"closed automatically {spoken(close_after)} after it was solved",
        resolution=timer.resolution or None,
    )
