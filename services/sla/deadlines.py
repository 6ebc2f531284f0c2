"""SLA timers: the moments a clock's warnings and breach are announced, and the announcements. Pure: no I/O."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from shared.events import SlaBreached, SlaWarning
from shared.ids import derived_id

_ALWAYS = frozenset({"ticket_id", "metric", "kind", "due_at", "fires_at", "fraction", "correlation_id"})


@dataclass(frozen=True)
class Timer:
    """A moment at which the SLA service must announce something about a ticket's deadline."""

    ticket_id: str
    metric: str
    kind: str  # "warning", "breach", "escalation" or (auto-close) "close"
    due_at: str  # ISO 8601: timers are stored as JSON, and equal timers must encode equally
    fires_at: float  # Unix seconds
    fraction: float
    correlation_id: str | None
    # Auto-close timers only: which resolution of the ticket they close (StatusChanged.resolution).
    resolution: int | None = None
    # Escalation timers only: the level (1 = the first of the policy's `escalation`) and the policy.
    level: int | None = None
    policy: str | None = None

    def encode(self) -> str:
        # Timers stored before these fields existed must encode as they were, or they could not be removed.
        fields = {key: value for key, value in asdict(self).items() if value is not None or key in _ALWAYS}
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> Timer:
        return cls(**json.loads(text))


def announcement(timer: Timer, now: datetime) -> SlaWarning | SlaBreached:
    envelope = {
        "event_id": derived_id(timer.ticket_id, timer.metric, timer.kind, timer.fraction, timer.due_at),
        "occurred_at": now,
        "ticket_id": timer.ticket_id,
        "correlation_id": timer.correlation_id,
        "metric": timer.metric,
        "due_at": datetime.fromisoformat(timer.due_at),
    }
    if timer.kind == "breach":
        return SlaBreached(**envelope)
    return SlaWarning(**envelope, fraction=timer.fraction)
