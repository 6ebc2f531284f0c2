"""SLA policies in the YAML config (SPEC §2, §3 SLA): which policy a ticket gets, its targets, pauses and warnings.

Policies are ordered; the first whose `when` matches the ticket wins, and a ticket no policy with a
`when` matches gets its team's `sla_policy`. Targets are per priority (`targets`), or one for every
priority (`first_response`, `next_response`, `resolution` at the top of the policy); a metric
without a target is not measured. Targets count business time on the policy's `calendar` (default
`24x7`: calendar time); metrics listed in `calendar_time` count calendar time whatever the calendar.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from shared.calendars import ALWAYS_OPEN_ID
from shared.durations import Duration, parse_duration, spoken
from shared.events import SlaMetric
from shared.rules import Priority

Positive = Annotated[Duration, Field(gt=timedelta(0))]
_DAYS = re.compile(r"^\s*(\d+)\s*d\s*$")


@dataclass(frozen=True)
class BusinessDays:
    """A target in whole business days ("2d"): due on the `days`-th open day after the clock starts, as far
    into that day's open time as the clock started into its own (shared.calendars.Calendar.add_business_days)."""

    days: int


def parse_target(value: Any) -> timedelta | BusinessDays:
    """A target as the config writes it: "90s", "30m", "4h" (business time) or "2d" (business days).
    Errors: ValueError naming the forms accepted."""
    if isinstance(value, dict) and set(value) == {"days"}:
        value = BusinessDays(value["days"])
    if isinstance(value, str):
        match = _DAYS.match(value)
        value = BusinessDays(int(match.group(1))) if match else parse_duration(value)
    if isinstance(value, BusinessDays) and isinstance(value.days, int) and value.days > 0:
        return value
    if isinstance(value, timedelta) and value > timedelta(0):
        return value
    raise ValueError(f"{value!r} is no target: use 90s, 30m, 4h (business time) or 2d (business days), above 0")


# A target: business time ("90s", "30m", "4h") or whole business days ("2d"), on the policy's calendar.
Target = Annotated[timedelta | BusinessDays, PlainValidator(parse_target)]
# A warning: a fraction of the target (0.75), or business time before the due instant ("15m").
WarnAt = Annotated[float, Field(gt=0, lt=1)] | Positive


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricTargets(_Strict):
    first_response: Target | None = None
    next_response: Target | None = None
    resolution: Target | None = None


class PolicyWhen(_Strict):
    """Every key given must hold (a list: one of these)."""

    priority: list[Priority] | None = None
    channel: list[str] | None = None
    team: list[str] | None = None
    category: list[str] | None = None
    # Tags of the ticket's contact when it was created: one of them is enough (compared lower-case).
    contact_tag: list[str] | None = None


class EscalationLevel(_Strict):
    """One step of a policy's escalation chain: when it fires (at a clock's first warning, at its breach,
    or a business duration after the breach) and what it does. Each level fires once per clock."""

    at: Literal["warning", "breach"] | Positive
    # Who is told in the ticket's Slack thread: "assignee", "lead", an agent ID; or a Slack channel ID.
    notify: list[str] = []
    # "lead": up the team's escalation chain; "queue": back to its team's queue, unassigned; a team ID: to
    # that team's queue (as `command.escalate`).
    reassign: str | None = None
    # One priority up (low → normal → high → urgent).
    raise_priority: bool = False
    # The clocks it watches (default: every clock the policy measures).
    metrics: list[SlaMetric] | None = None

    def label(self) -> str:
        if isinstance(self.at, timedelta):
            return f"{spoken(self.at)} after the breach"
        return f"at the {self.at}"


class SlaPolicy(_Strict):
    id: str
    when: PolicyWhen | None = None
    calendar: str = ALWAYS_OPEN_ID
    calendar_time: list[SlaMetric] = []
    first_response: Target | None = None
    next_response: Target | None = None
    resolution: Target | None = None
    targets: dict[Priority, MetricTargets] = {}
    # Statuses in which the resolution clock stops counting.
    pause_on: list[Literal["pending", "on_hold"]] = ["pending"]
    warn_at: list[WarnAt] = [0.75]
    escalation: list[EscalationLevel] = []

    def matches(
        self, *, priority: str, channel: str, team: str, category: str, contact_tags: Iterable[str] = ()
    ) -> bool:
        """Whether every key of `when` holds; `contact_tags`: the tags of the ticket's contact."""
        when = self.when
        if when is None:
            return False
        wanted = ((when.priority, priority), (when.channel, channel), (when.team, team), (when.category, category))
        if when.contact_tag is not None and {tag.lower() for tag in when.contact_tag}.isdisjoint(contact_tags):
            return False
        return all(allowed is None or value in allowed for allowed, value in wanted)

    def target(self, priority: str, metric: SlaMetric) -> timedelta | BusinessDays | None:
        """This priority's target for `metric`: its own under `targets`, else the policy's for every priority;
        None: not measured."""
        own = self.targets.get(priority)  # type: ignore[call-overload]
        return (getattr(own, metric) if own is not None else None) or getattr(self, metric)

    def calendar_of(self, metric: SlaMetric) -> str:
        return ALWAYS_OPEN_ID if metric in self.calendar_time else self.calendar
