"""SLA clocks in business time: first response, next response and resolution. Pure: no I/O.

A `Clock` counts the time a metric has used against its target on a calendar: `used` holds what
was counted up to `running_since` (the start of the current running stretch); while paused or
finished nothing is added. Its due instant is where the calendar's open time reaches the target.
`TicketClocks` applies a ticket's lifecycle to its three clocks (SPEC §3 SLA, issue #12):

- first response: from creation to the first public agent reply (notes never count); never paused.
- next response: from the oldest customer message not yet answered (once the first response is met)
  to the next public agent reply; never paused; the next customer message starts it again.
- resolution: from creation to solved; paused in a `pause_on` status (default `pending`); a reopened
  ticket resumes it with the time already used kept.

A ticket solved or closed stops the response clocks it leaves running (nobody waits for an answer
any more); closing stops them all. A new target (priority or policy changed) keeps the time used
since the original start, so the due instant moves; breaches already recorded stay recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol

from shared.events import SlaMetric as Metric
from shared.sla_policies import BusinessDays

ClockState = Literal["running", "paused", "met", "breached", "stopped"]
ZERO = timedelta(0)


class BusinessCalendar(Protocol):
    """What a clock needs of a calendar (shared.calendars.Calendar; `24x7` counts calendar time)."""

    def business_time(self, start: datetime, end: datetime) -> timedelta:
        """The open time between two instants (zero when `end` is not after `start`)."""
        ...

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which `duration` of open time has passed since `start`."""
        ...

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """The instant `days` business days after `start`."""
        ...


@dataclass(frozen=True)
class Clock:
    """One metric's clock. Instants are aware datetimes; durations are business time on its calendar."""

    metric: Metric
    target: timedelta
    started_at: datetime
    # Business time counted before `running_since`.
    used: timedelta = ZERO
    # Start of the current running stretch; None while paused or finished.
    running_since: datetime | None = None
    paused_since: datetime | None = None
    # Wall time spent paused, finished stretches only (shown by `switchboard sla show`).
    paused_for: timedelta = ZERO
    outcome: Literal["met", "stopped"] | None = None
    finished_at: datetime | None = None
    # A breach was announced (stays recorded when the target later moves).
    breached: bool = False
    # The escalation levels that fired for this clock (each fires once).
    escalated: tuple[int, ...] = ()
    # What started the clock: the ticket, or the customer message a next response answers.
    cause: str = ""

    @classmethod
    def start(cls, metric: Metric, target: timedelta, at: datetime, cause: str = "") -> Clock:
        return cls(metric, target, at, running_since=at, cause=cause)

    @property
    def running(self) -> bool:
        return self.running_since is not None

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    def used_at(self, at: datetime, calendar: BusinessCalendar) -> timedelta:
        """Business time used up to `at` (an instant not before the last change)."""
        if self.running_since is None:
            return self.used
        return self.used + calendar.business_time(self.running_since, at)

    def due_at(self, calendar: BusinessCalendar) -> datetime | None:
        """When the target is reached if the clock keeps running; None while paused or finished."""
        return self._reached(self.target, calendar)

    def state(self, at: datetime, calendar: BusinessCalendar) -> ClockState:
        if self.outcome is not None:
            return self.outcome
        if self.breached or self.used_at(at, calendar) >= self.target:
            return "breached"
        return "paused" if self.paused else "running"

    def warnings(
        self, warn_at: Sequence[float | timedelta], calendar: BusinessCalendar
    ) -> list[tuple[float, datetime]]:
        """(fraction of the target, instant), in time order, for each warning still ahead of the clock: a
        fraction of the target, or a business duration before the due instant. Passed ones (and ones at or
        past the target) are left out: a resumed clock does not warn twice for the same threshold."""
        if self.running_since is None:
            return []
        thresholds = {self.target * mark if isinstance(mark, float) else self.target - mark for mark in warn_at}
        ahead = sorted(threshold for threshold in thresholds if self.used < threshold < self.target)
        return [
            (round(threshold / self.target, 6), calendar.add_business_time(self.running_since, threshold - self.used))
            for threshold in ahead
        ]

    def _reached(self, threshold: timedelta, calendar: BusinessCalendar) -> datetime | None:
        if self.running_since is None:
            return None
        # Already past the threshold: it is reached the moment the clock runs.
        return calendar.add_business_time(self.running_since, max(threshold - self.used, ZERO))

    def pause(self, at: datetime, calendar: BusinessCalendar) -> Clock:
        if self.running_since is None:
            return self
        return replace(self, used=self.used_at(at, calendar), running_since=None, paused_since=at)

    def resume(self, at: datetime) -> Clock:
        """Runs again from `at`, keeping the time used: after a pause, or a resolution reopened."""
        if self.running_since is not None:
            return self
        paused_for = self.paused_for + (at - self.paused_since if self.paused_since else ZERO)
        return replace(self, running_since=at, paused_since=None, paused_for=paused_for, outcome=None, finished_at=None)

    def finish(self, outcome: Literal["met", "stopped"], at: datetime, calendar: BusinessCalendar) -> Clock:
        if self.outcome is not None:
            return self
        paused_for = self.paused_for + (at - self.paused_since if self.paused_since else ZERO)
        return replace(
            self,
            used=self.used_at(at, calendar),
            running_since=None,
            paused_since=None,
            paused_for=paused_for,
            outcome=outcome,
            finished_at=at,
        )

    def retarget(self, target: timedelta) -> Clock:
        """The same clock against another target: the time used since the original start is kept."""
        return replace(self, target=target)


@dataclass(frozen=True)
class Targets:
    """A policy's targets for one priority (None: that metric is not measured) and what pauses resolution."""

    first_response: timedelta | BusinessDays | None = None
    next_response: timedelta | BusinessDays | None = None
    resolution: timedelta | BusinessDays | None = None
    pause_on: frozenset[str] = frozenset({"pending"})

    def span(self, metric: Metric, start: datetime, calendar: BusinessCalendar) -> timedelta | None:
        """The metric's target as business time for a clock starting at `start` (whole business days
        become the open time until the same point of the day that many open days later); None: not
        measured."""
        target = getattr(self, metric)
        if isinstance(target, BusinessDays):
            return calendar.business_time(start, calendar.add_business_days(start, target.days))
        return target


@dataclass(frozen=True)
class TicketClocks:
    """A ticket's clocks by metric, and its status as the clocks know it."""

    clocks: Mapping[Metric, Clock] = field(default_factory=dict)
    status: str = "new"

    def get(self, metric: Metric) -> Clock | None:
        return self.clocks.get(metric)

    def _with(self, **changes: Clock | None) -> TicketClocks:
        clocks = dict(self.clocks)
        for metric, clock in changes.items():
            if clock is None:
                clocks.pop(metric, None)  # type: ignore[call-overload]
            else:
                clocks[metric] = clock  # type: ignore[index]
        return replace(self, clocks=clocks)

    def created(self, at: datetime, targets: Targets, ticket_id: str, calendar: CalendarsByMetric) -> TicketClocks:
        """A new ticket: first response and resolution start (those the policy measures)."""
        started = {
            metric: Clock.start(metric, target, at, cause=ticket_id)
            for metric in ("first_response", "resolution")
            if (target := targets.span(metric, at, calendar[metric])) is not None
        }
        return replace(self, clocks=started, status="new")

    def customer_wrote(
        self, at: datetime, targets: Targets, message_id: str, calendar: CalendarsByMetric
    ) -> TicketClocks:
        """A customer message waits for an answer: next response starts unless an earlier unanswered
        message already runs it, or the first response (still owed) covers it."""
        first, following = self.get("first_response"), self.get("next_response")
        if first is not None and first.outcome is None:
            return self
        if following is not None and following.outcome is None:
            return self
        if (target := targets.span("next_response", at, calendar["next_response"])) is None:
            return self
        return self._with(next_response=Clock.start("next_response", target, at, cause=message_id))

    def agent_replied(self, at: datetime, calendar: CalendarsByMetric) -> TicketClocks:
        """A public agent reply (never a note) meets the response clocks that run."""
        return self._with(
            **{
                metric: clock.finish("met", at, calendar[metric])
                for metric in ("first_response", "next_response")
                if (clock := self.get(metric)) is not None and clock.outcome is None
            }
        )

    def status_changed(
        self, to_status: str, at: datetime, targets: Targets, calendar: CalendarsByMetric
    ) -> TicketClocks:
        changes: dict[str, Clock] = {}
        if to_status in ("solved", "closed"):
            for metric in ("first_response", "next_response"):
                if (clock := self.get(metric)) is not None:
                    changes[metric] = clock.finish("stopped", at, calendar[metric])
        if (resolution := self.get("resolution")) is not None:
            if to_status == "solved":
                changes["resolution"] = resolution.finish("met", at, calendar["resolution"])
            elif to_status == "closed":
                if self.status != "solved":
                    changes["resolution"] = resolution.finish("stopped", at, calendar["resolution"])
            elif to_status in targets.pause_on:
                changes["resolution"] = resolution.pause(at, calendar["resolution"])
            else:
                # Active again: out of a pause, or reopened after solved (the time used is kept).
                changes["resolution"] = resolution.resume(at)
        return replace(self._with(**changes), status=to_status)

    def retargeted(self, targets: Targets, calendar: CalendarsByMetric) -> TicketClocks:
        """New targets (priority or policy changed), counted from each clock's original start; a metric the
        new policy does not measure ends."""
        return self._with(
            **{
                metric: clock.retarget(target)
                if (target := targets.span(metric, clock.started_at, calendar[metric]))
                else None
                for metric, clock in self.clocks.items()
            }
        )

    def breached(self, metric: Metric) -> TicketClocks:
        if (clock := self.get(metric)) is None:
            return self
        return self._with(**{metric: replace(clock, breached=True)})

    def escalated(self, metric: Metric, level: int) -> TicketClocks:
        if (clock := self.get(metric)) is None or level in clock.escalated:
            return self
        return self._with(**{metric: replace(clock, escalated=(*clock.escalated, level))})


CalendarsByMetric = Mapping[str, BusinessCalendar]
