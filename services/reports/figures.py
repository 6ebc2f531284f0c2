"""Report figures folded from the ticket log, in pure code (no I/O): `switchboard report` and the Slack digest.

A `ReportFold` takes the tickets topic's events one at a time, in any order across tickets but in log order
per ticket (the topic is keyed by ticket ID), and `figures()` returns a `Report` for one `Window`:

- tickets by channel, category and team: tickets created in the window;
- first response (creation to the first public agent reply), next response (the oldest unanswered customer
  message to the next public agent reply) and resolution (creation to the last solve of the ticket): median
  and p90 in seconds, calendar time and business time on the calendar the ticket's SLA policy counts that
  metric on (`sla_policies[].calendar`, `calendar_time`; shared/calendars.py `business_time`; pauses are
  not subtracted). Counted when the reply or solve happened in the window, as the SLA clocks count them
  (a message's `received_at`, a status change's `occurred_at`);
- backlog at the end of each day of the window (midnight in the report's time zone): unsolved tickets (new,
  open, pending, on hold) by status and by age since creation;
- SLA compliance per policy and metric: clocks met on time ÷ clocks that fell due (met on time or breached:
  `sla.breached`, or an `sla.met` later than its due time), by when they ended; stopped clocks do not count;
- CSAT: ratings given in the window, the share of 4s and 5s;
- per agent: tickets solved (credited to the assignee at the solve), first responses given, their median
  times, CSAT of their tickets;
- deflections: tickets solved with the reason "deflected" (the customer's "this solved it" on a suggested
  article, issue 13), kept out of the resolution times and the agents' solves.

The team filter keeps what concerned tickets of that team at the time (created in it, replied to or solved
while in it, in its backlog at the day's end).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, get_args
from zoneinfo import ZoneInfo

from services.knowledge.articles import DEFLECTED
from shared.calendars import Calendar
from shared.events import (
    ACTIVE_STATUSES,
    SLA_METRICS,
    CsatRated,
    MessageAdded,
    SlaBreached,
    SlaDeadlineSet,
    SlaMet,
    StatusChanged,
    TicketAssigned,
    TicketCreated,
    TicketQueued,
    TicketStatus,
)

# Actors that are not agents: their solves credit the assignee, if any.
_NOT_AGENTS = frozenset({"system", "customer", "admin"})
# The active statuses in the lifecycle's order (for columns).
BACKLOG_STATUSES: tuple[str, ...] = tuple(status for status in get_args(TicketStatus) if status in ACTIVE_STATUSES)
# Age buckets of the backlog: (label, upper bound exclusive); the last has none.
AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("<1d", timedelta(days=1)),
    ("1-3d", timedelta(days=3)),
    ("3-7d", timedelta(days=7)),
    (">=7d", None),
)
TIME_METRICS: tuple[str, ...] = ("first_response", "next_response", "resolution")

# (policy ID, SLA metric) → the calendar that metric's business time counts on.
CalendarOf = Callable[[str, str], Calendar]


def median(values: Sequence[float]) -> float | None:
    """The median (the mean of the middle two of an even count); None for no values."""
    return float(statistics.median(values)) if values else None


def p90(values: Sequence[float]) -> float | None:
    """The 90th percentile by nearest rank: the smallest value with at least 90% of the values at or below
    it (always one of the values); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[math.ceil(0.9 * len(ordered)) - 1])


def age_bucket(age: timedelta) -> str:
    return next(label for label, bound in AGE_BUCKETS if bound is None or age < bound)


@dataclass(frozen=True)
class Window:
    """What a report covers: instants in [since, until), one team or all, days ending at midnight in `zone`."""

    since: datetime
    until: datetime
    team: str | None = None
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    def __contains__(self, at: object) -> bool:
        return isinstance(at, datetime) and self.since <= at < self.until

    def day_ends(self) -> list[tuple[str, datetime]]:
        """(the day, its end) for every local midnight in (since, until]: the days the window covers."""
        day = self.since.astimezone(self.zone).date()
        ends = []
        while True:
            end = datetime.combine(day + timedelta(days=1), time(0), self.zone)
            if end > self.until:
                return ends
            if end > self.since:
                ends.append((day.isoformat(), end))
            day += timedelta(days=1)


@dataclass
class _Ticket:
    created_at: datetime
    channel: str
    category: str
    team: str
    policy: str | None = None
    assignee: str | None = None
    first_reply_at: datetime | None = None
    # The oldest customer message not yet answered, once the first response was given.
    waiting_since: datetime | None = None
    # (when, status, team) after each status or team change, in log order.
    history: list[tuple[datetime, str, str]] = field(default_factory=list)
    # SLA clocks that breached: (metric, due instant), so that their late `sla.met` is not counted again.
    breached: set[tuple[str, datetime]] = field(default_factory=set)


@dataclass
class _Timing:
    """One response or resolution: when it happened, its times in seconds, whose it was, on which team."""

    at: datetime
    team: str
    calendar_seconds: float
    business_seconds: float
    agent: str | None


@dataclass
class Report:
    """The figures of one window; `as_dict()` is the JSON shape `switchboard report --format json` prints."""

    since: datetime
    until: datetime
    team: str | None
    tickets: dict[str, Any]
    times: dict[str, dict[str, dict[str, float | int | None]]]
    backlog: list[dict[str, Any]]
    sla: list[dict[str, Any]]
    csat: dict[str, Any]
    agents: list[dict[str, Any]]
    deflections: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "team": self.team,
            "tickets": self.tickets,
            "times": self.times,
            "backlog": self.backlog,
            "sla": self.sla,
            "csat": self.csat,
            "agents": self.agents,
            "deflections": self.deflections,
        }


def _summary(values: Sequence[float]) -> dict[str, float | int | None]:
    return {"count": len(values), "median": median(values), "p90": p90(values)}


def _csat(scores: Sequence[int]) -> dict[str, Any]:
    satisfied = sum(score >= 4 for score in scores)
    return {"count": len(scores), "satisfied": satisfied, "share": satisfied / len(scores) if scores else None}


class ReportFold:
    """Folds ticket events into what the figures need; holds a few fields per ticket, never the events."""

    def __init__(self, calendar_of: CalendarOf, default_policy: Callable[[TicketCreated], str]):
        """`calendar_of(policy, metric)`: the calendar a metric's business time counts on; `default_policy`:
        the policy of a ticket the SLA service set no deadline for (the config's choice for it)."""
        self._calendar_of = calendar_of
        self._default_policy = default_policy
        self._tickets: dict[str, _Ticket] = {}
        self._times: dict[str, list[_Timing]] = {metric: [] for metric in TIME_METRICS}
        # The last solve of each ticket (the resolution counted), and deflections: (at, team).
        self._solves: dict[str, _Timing] = {}
        self._deflections: dict[str, tuple[datetime, str]] = {}
        # (at, team, policy, metric, met on time)
        self._sla: list[tuple[datetime, str, str, str, bool]] = []
        # (at, team, agent, score)
        self._ratings: list[tuple[datetime, str, str | None, int]] = []

    def add(self, event: Any) -> None:
        """Takes one event of the tickets topic (others are ignored)."""
        if isinstance(event, TicketCreated):
            if event.ticket_id not in self._tickets:
                ticket = _Ticket(event.occurred_at, event.channel, event.category, event.team)
                ticket.policy = self._default_policy(event)
                ticket.history.append((event.occurred_at, "new", event.team))
                self._tickets[event.ticket_id] = ticket
            return
        ticket = self._tickets.get(getattr(event, "ticket_id", ""))
        if ticket is None:
            return
        match event:
            case MessageAdded():
                self._message(ticket, event)
            case StatusChanged():
                self._status(event.ticket_id, ticket, event)
            case TicketAssigned():
                ticket.assignee = event.agent_id
                self._moved(ticket, event.occurred_at, event.team)
            case TicketQueued():
                ticket.assignee = None
                self._moved(ticket, event.occurred_at, event.team)
            case SlaDeadlineSet():
                ticket.policy = event.policy
            case SlaBreached():
                if (event.metric, event.due_at) not in ticket.breached:
                    ticket.breached.add((event.metric, event.due_at))
                    self._sla.append((event.occurred_at, ticket.team, ticket.policy or "", event.metric, False))
            case SlaMet():
                on_time = event.due_at is None or event.met_at <= event.due_at
                if on_time or (event.metric, event.due_at) not in ticket.breached:
                    self._sla.append((event.met_at, ticket.team, ticket.policy or "", event.metric, on_time))
            case CsatRated():
                self._ratings.append((event.occurred_at, event.team, event.assignee_id, event.score))

    def _moved(self, ticket: _Ticket, at: datetime, team: str) -> None:
        if team != ticket.team:
            ticket.team = team
            ticket.history.append((at, ticket.history[-1][1], team))

    def _timing(self, ticket: _Ticket, metric: str, start: datetime, end: datetime, agent: str | None) -> _Timing:
        calendar = self._calendar_of(ticket.policy or "", metric)
        return _Timing(
            end,
            ticket.team,
            (end - start).total_seconds(),
            calendar.business_time(start, end).total_seconds(),
            agent,
        )

    def _message(self, ticket: _Ticket, event: MessageAdded) -> None:
        at = event.received_at
        if event.author == "customer" and event.kind == "message" and event.review is None:
            if ticket.first_reply_at is not None and ticket.waiting_since is None:
                ticket.waiting_since = at
        elif event.author == "agent" and not event.internal:
            if ticket.first_reply_at is None:
                ticket.first_reply_at = at
                self._times["first_response"].append(
                    self._timing(ticket, "first_response", ticket.created_at, at, event.agent_id)
                )
            elif ticket.waiting_since is not None:
                self._times["next_response"].append(
                    self._timing(ticket, "next_response", ticket.waiting_since, at, event.agent_id)
                )
                ticket.waiting_since = None

    def _status(self, ticket_id: str, ticket: _Ticket, event: StatusChanged) -> None:
        ticket.team = event.team
        ticket.assignee = event.assignee_id
        ticket.history.append((event.occurred_at, event.to_status, event.team))
        if event.to_status != "solved":
            return
        if event.reason == DEFLECTED:
            self._deflections[ticket_id] = (event.occurred_at, event.team)
            self._solves.pop(ticket_id, None)
            return
        agent = event.assignee_id or (event.actor if event.actor not in _NOT_AGENTS else None)
        self._solves[ticket_id] = self._timing(ticket, "resolution", ticket.created_at, event.occurred_at, agent)
        self._deflections.pop(ticket_id, None)

    def figures(self, window: Window) -> Report:
        """The report for `window` from everything added so far."""

        def kept(at: datetime, team: str) -> bool:
            return at in window and (window.team is None or team == window.team)

        created = [t for t in self._tickets.values() if kept(t.created_at, t.history[0][2])]
        timings = {metric: [t for t in self._times[metric] if kept(t.at, t.team)] for metric in TIME_METRICS[:2]}
        timings["resolution"] = [t for t in self._solves.values() if kept(t.at, t.team)]
        times = {
            metric: {
                "calendar": _summary([t.calendar_seconds for t in found]),
                "business": _summary([t.business_seconds for t in found]),
            }
            for metric, found in timings.items()
        }
        ratings = [r for r in self._ratings if kept(r[0], r[1])]
        return Report(
            since=window.since,
            until=window.until,
            team=window.team,
            tickets={
                "created": len(created),
                "by_channel": _counts(t.channel for t in created),
                "by_category": _counts(t.category for t in created),
                "by_team": _counts(t.history[0][2] for t in created),
            },
            times=times,
            backlog=self._backlog(window),
            sla=self._compliance(kept),
            csat=_csat([score for *_, score in ratings]),
            agents=_agents(timings, ratings),
            deflections=sum(kept(at, team) for at, team in self._deflections.values()),
        )

    def _backlog(self, window: Window) -> list[dict[str, Any]]:
        days = []
        for day, end in window.day_ends():
            by_status: Counter[str] = Counter()
            by_age: Counter[str] = Counter()
            for ticket in self._tickets.values():
                state = _state_at(ticket.history, end)
                if state is None or state[0] not in ACTIVE_STATUSES:
                    continue
                if window.team is not None and state[1] != window.team:
                    continue
                by_status[state[0]] += 1
                by_age[age_bucket(end - ticket.created_at)] += 1
            days.append(
                {
                    "day": day,
                    "total": sum(by_status.values()),
                    "by_status": {status: by_status[status] for status in BACKLOG_STATUSES},
                    "by_age": {label: by_age[label] for label, _ in AGE_BUCKETS},
                }
            )
        return days

    def _compliance(self, kept: Callable[[datetime, str], bool]) -> list[dict[str, Any]]:
        met: Counter[tuple[str, str]] = Counter()
        due: Counter[tuple[str, str]] = Counter()
        for at, team, policy, metric, on_time in self._sla:
            if kept(at, team):
                due[policy, metric] += 1
                met[policy, metric] += on_time
        order = {metric: index for index, metric in enumerate(SLA_METRICS)}
        return [
            {"policy": policy, "metric": metric, "met": met[policy, metric], "due": count,
             "compliance": met[policy, metric] / count}
            for (policy, metric), count in sorted(due.items(), key=lambda item: (item[0][0], order[item[0][1]]))
        ]  # fmt: skip


def _state_at(history: list[tuple[datetime, str, str]], at: datetime) -> tuple[str, str] | None:
    """(status, team) of the ticket just before `at`: the last change before it in time (log order breaks ties)."""
    state = None
    latest = None
    for when, status, team in history:
        if when < at and (latest is None or when >= latest):
            state, latest = (status, team), when
    return state


def _counts(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def _agents(timings: dict[str, list[_Timing]], ratings: list[tuple[datetime, str, str | None, int]]) -> list[dict]:
    first: dict[str, list[float]] = defaultdict(list)
    solved: dict[str, list[float]] = defaultdict(list)
    scores: dict[str, list[int]] = defaultdict(list)
    for timing in timings["first_response"]:
        if timing.agent:
            first[timing.agent].append(timing.calendar_seconds)
    for timing in timings["resolution"]:
        if timing.agent:
            solved[timing.agent].append(timing.calendar_seconds)
    for _, _, agent, score in ratings:
        if agent:
            scores[agent].append(score)
    return [
        {
            "agent": agent,
            "solved": len(solved[agent]),
            "first_responses": len(first[agent]),
            "first_response_median": median(first[agent]),
            "resolution_median": median(solved[agent]),
            "csat": _csat(scores[agent]),
        }
        for agent in sorted({*first, *solved, *scores})
    ]
