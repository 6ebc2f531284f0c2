"""SLA clocks: which deadlines a ticket gets and which timers announce them. Pure: no I/O."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from shared.config import SlaPolicy
from shared.events import MessageAdded, SlaBreached, SlaDeadlineSet, SlaMet, SlaWarning, TicketCreated
from shared.ids import derived_id


@dataclass(frozen=True)
class Timer:
    """A moment at which the SLA service must announce something about a ticket's deadline."""

    ticket_id: str
    metric: str
    kind: str  # "warning" or "breach"
    due_at: str  # ISO 8601: timers are stored as JSON, and equal timers must encode equally
    fires_at: float  # Unix seconds
    fraction: float
    correlation_id: str | None
    # Auto-close timers only: which resolution of the ticket they close (StatusChanged.resolution).
    resolution: int | None = None

    def encode(self) -> str:
        fields = asdict(self)
        if self.resolution is None:
            # Timers stored before auto-close existed must encode as they were, or they could not be removed.
            del fields["resolution"]
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> Timer:
        return cls(**json.loads(text))


def first_response_deadline(created: TicketCreated, policy: SlaPolicy) -> SlaDeadlineSet:
    due_at = created.occurred_at + policy.first_response
    return SlaDeadlineSet(
        event_id=derived_id(created.event_id, "first_response_deadline"),
        occurred_at=created.occurred_at,
        ticket_id=created.ticket_id,
        correlation_id=created.correlation_id,
        traceparent=created.traceparent,
        metric="first_response",
        policy=policy.id,
        due_at=due_at,
        warnings_at=[
            created.occurred_at + policy.first_response * fraction for fraction in sorted(set(policy.warn_at))
        ],
    )


def timers_for(deadline: SlaDeadlineSet) -> list[Timer]:
    """The warning timers and the breach timer the deadline event names."""
    started = deadline.occurred_at.timestamp()
    target = deadline.due_at.timestamp() - started
    common = {
        "ticket_id": deadline.ticket_id,
        "metric": deadline.metric,
        "due_at": deadline.due_at.isoformat(),
        "correlation_id": deadline.correlation_id,
    }
    warnings = [
        Timer(
            kind="warning",
            fires_at=warning_at.timestamp(),
            fraction=round((warning_at.timestamp() - started) / target, 6) if target > 0 else 1.0,
            **common,
        )
        for warning_at in deadline.warnings_at
    ]
    return [*warnings, Timer(kind="breach", fires_at=deadline.due_at.timestamp(), fraction=1.0, **common)]


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


def first_response_met(reply: MessageAdded, due_at: datetime | None) -> SlaMet:
    """The first agent reply stops the first-response clock; one such event per ticket."""
    return SlaMet(
        event_id=derived_id(reply.ticket_id, "first_response", "met"),
        occurred_at=reply.occurred_at,
        ticket_id=reply.ticket_id,
        correlation_id=reply.correlation_id,
        traceparent=reply.traceparent,
        metric="first_response",
        due_at=due_at,
        met_at=reply.received_at,
    )
