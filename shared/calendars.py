"""Business calendars: when a desk or an agent is open, and how much open time lies between two instants.

A calendar is a time zone, weekly hours (several intervals a day: split shifts; a day without intervals is
closed), holidays (whole local dates closed) and overrides (a date with its own intervals, which wins over
the week and the holidays). Source of the rules: SPEC §2 (`calendars:`) and §3 SLA; issue #12.

Instants in and out are timezone-aware datetimes; every result is in UTC (`datetime.timezone.utc`) so that
arithmetic between results is exact (Python subtracts two datetimes sharing one ZoneInfo as wall times);
use `.astimezone(calendar.tz)` to show one. Durations are `timedelta`s, exact to the microsecond.

Interval bounds are local wall times, converted with `zoneinfo`, so daylight saving days have 23 or 25
hours. A bound stands for the first instant at which the local clock shows that time or later:
- a bound in the hour skipped when clocks go forward (02:30 in Berlin on the last Sunday of March) is the
  instant the clock jumps (03:00 CEST), so "02:00-04:00" is open one hour that day;
- a bound in the hour repeated when clocks go back is its first occurrence (CEST), so "00:00-24:00" is
  open 25 hours that day and, during the repeated hour, the calendar stays as it was at the end of the
  first pass ("01:00-03:00" stays open through both passes; "02:00-02:30" is closed in the second pass).
Equivalently: an instant is open when the highest wall-clock time shown so far falls inside an interval
of its date. The tests check the arithmetic against that definition minute by minute.

Searches are bounded: when no open time is found within `SEARCH_DAYS` local days (or, for a calendar
without weekly hours, after its last override), `next_open` returns None and `add_business_time` raises
`NoOpenTime`; a calendar open throughout `SEARCH_DAYS` days (`24x7`) has no `next_close` (None).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_library
import icalendar

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MINUTES = 24 * 60
# How far (local days) a search for open time or for the next close looks before it gives up.
SEARCH_DAYS = 1100
ALWAYS_OPEN_ID = "24x7"

# An open interval of one day: minutes after local midnight, [start, end), end at most 1440 (24:00).
Span = tuple[int, int]


class NoOpenTime(ValueError):
    """The calendar has no more open time after the instant asked about (as far as a search looks)."""


def parse_time_of_day(text: str, *, end: bool = False) -> int:
    """'09:30' → 570 minutes after midnight; '24:00' only as an interval's end. Errors: ValueError."""
    hours, sep, minutes = text.strip().partition(":")
    if not (sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"{text!r} is not a time of day HH:MM")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > DAY_MINUTES or (value == DAY_MINUTES and not end):
        raise ValueError(f"{text!r} is not a time of day between 00:00 and {'24:00' if end else '23:59'}")
    return value


def parse_spans(texts: Sequence[str]) -> tuple[Span, ...]:
    """["09:00-12:00", "13:00-18:00"] → ((540, 720), (780, 1080)): sorted, adjacent ones joined.

    Errors (ValueError, naming the interval): a malformed "HH:MM-HH:MM", an end not after its start,
    intervals that overlap.
    """
    spans = []
    for text in texts:
        start_text, sep, end_text = text.partition("-")
        if not sep:
            raise ValueError(f"{text!r} is not an interval HH:MM-HH:MM")
        start, end = parse_time_of_day(start_text), parse_time_of_day(end_text, end=True)
        if end <= start:
            raise ValueError(f"{text!r} ends before it starts")
        spans.append((start, end, text))
    spans.sort()
    joined: list[Span] = []
    for index, (start, end, text) in enumerate(spans):
        if joined and start < joined[-1][1]:
            raise ValueError(f"{spans[index - 1][2]!r} and {text!r} overlap")
        if joined and start == joined[-1][1]:
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return tuple(joined)


def ics_holidays(text: str) -> frozenset[date]:
    """The dates of the all-day events (DTSTART;VALUE=DATE) of an iCalendar (RFC 5545) document.

    A multi-day event closes every date from DTSTART up to DTEND (exclusive, RFC 5545 §3.6.1) or for its
    DURATION; cancelled events (STATUS:CANCELLED) close nothing. Errors (ValueError): not iCalendar, an
    event that starts at a time of day or repeats (RRULE/RDATE: list each date), or one without DTSTART.
    """
    try:
        document = icalendar.Calendar.from_ical(text)
    except ValueError as error:
        raise ValueError(f"not an iCalendar file: {error}") from error
    days: set[date] = set()
    for event in document.walk("VEVENT"):
        name = str(event.get("SUMMARY", event.get("UID", "an event")))
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        if "RRULE" in event or "RDATE" in event:
            raise ValueError(f"event {name!r} repeats (RRULE/RDATE); list each holiday as its own event")
        if "DTSTART" not in event:
            raise ValueError(f"event {name!r} has no DTSTART")
        first = event.decoded("DTSTART")
        if isinstance(first, datetime) or not isinstance(first, date):
            raise ValueError(f"event {name!r} starts at a time of day; only all-day events (VALUE=DATE) are holidays")
        if "DTEND" in event:
            after = event.decoded("DTEND")
        elif "DURATION" in event:
            after = first + event.decoded("DURATION")
        else:
            after = first + timedelta(days=1)
        if isinstance(after, datetime):
            after = after.date()
        days.update(first + timedelta(days=offset) for offset in range(max((after - first).days, 1)))
    return frozenset(days)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`. Errors: ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown IANA time zone {name!r}") from error


@dataclass(frozen=True)
class Holidays:
    """Dates a calendar is closed: listed ones, and a country's (subdivision's) public holidays.

    The country's holidays come from the `holidays` library, computed a year at a time when first asked
    (no I/O). Errors (ValueError): a country or subdivision the library does not know.
    """

    dates: frozenset[date] = frozenset()
    country: str | None = None
    subdivision: str | None = None

    def __post_init__(self) -> None:
        if self.subdivision is not None and self.country is None:
            raise ValueError("a subdivision needs its country")
        if self.country is not None:
            try:
                public = holiday_library.country_holidays(self.country, subdiv=self.subdivision)
            except NotImplementedError as error:
                raise ValueError(f"the holidays library does not know {error}") from error
            object.__setattr__(self, "_public", public)

    def __contains__(self, day: object) -> bool:
        if day in self.dates:
            return True
        public = getattr(self, "_public", None)
        return public is not None and day in public


class Calendar:
    """A business calendar (see the module docstring for the rules). Pure: no I/O, no clock reads."""

    def __init__(
        self,
        calendar_id: str,
        tz: ZoneInfo,
        week: Mapping[str, Sequence[Span]],
        holidays: Holidays = Holidays(),
        overrides: Mapping[date, Sequence[Span]] | None = None,
    ):
        """`week`: weekday ('mon' … 'sun') → spans (`parse_spans`), an absent day is closed;
        `overrides`: a date → its own spans (empty: closed), winning over `week` and `holidays`."""
        unknown = set(week) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown weekdays {sorted(unknown)}")
        self.id = calendar_id
        self.tz = tz
        self._week = tuple(tuple(week.get(day, ())) for day in WEEKDAYS)
        self._holidays = holidays
        self._overrides = {day: tuple(spans) for day, spans in (overrides or {}).items()}
        # Without weekly hours only the override dates can open: searches hop from one to the next.
        self._open_overrides = sorted(day for day, spans in self._overrides.items() if spans)
        self._weekly = any(self._week)
        self._intervals_on = functools.lru_cache(maxsize=2048)(self._compute_intervals_on)

    def __repr__(self) -> str:
        return f"Calendar({self.id!r}, {self.tz.key!r})"

    def spans_on(self, day: date) -> tuple[Span, ...]:
        """The open spans of a local date: its override, else none on a holiday, else its weekday's."""
        if day in self._overrides:
            return self._overrides[day]
        if day in self._holidays:
            return ()
        return self._week[day.weekday()]

    def is_open(self, at: datetime) -> bool:
        """Whether the calendar is open at the instant `at` (aware)."""
        at = _utc(at)
        day = at.astimezone(self.tz).date()
        # Neighbouring dates too: where clocks go back across midnight, a date's hours begin before the
        # previous date's wall times have all passed.
        return any(
            start <= at < end
            for neighbour in (day - timedelta(days=1), day, day + timedelta(days=1))
            for start, end in self._intervals_on(neighbour)
        )

    def next_open(self, at: datetime) -> datetime | None:
        """The first instant at or after `at` at which the calendar is open (`at` itself when open), in UTC;
        None when there is no more open time (see the module docstring for how far the search looks)."""
        at = _utc(at)
        for start, _end in self._intervals_after(at):
            return max(start, at)
        return None

    def next_close(self, at: datetime) -> datetime | None:
        """The first instant at or after `at` at which the calendar is closed (`at` itself when closed), in
        UTC; None when it stays open for `SEARCH_DAYS` days (e.g. `24x7`)."""
        at = _utc(at)
        horizon = at + timedelta(days=SEARCH_DAYS)
        close = at
        for start, end in self._intervals_after(at):
            if start > close:
                break
            close = end
            if close > horizon:
                return None
        return close

    def business_time(self, start: datetime, end: datetime) -> timedelta:
        """The open time between the instants `start` and `end` (zero when `end` is not after `start`)."""
        start, end = _utc(start), _utc(end)
        total = timedelta(0)
        if end <= start:
            return total
        for interval_start, interval_end in self._intervals_after(start):
            if interval_start >= end:
                break
            total += min(interval_end, end) - max(interval_start, start)
        return total

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The first instant, in UTC, at which `duration` of open time has elapsed since `start`.

        A duration ending exactly at a close gives the close (a target of 8 h from 09:00 on a 09:00-17:00
        day is due at 17:00, not at the next opening); zero gives `start`. Errors: ValueError for a
        negative duration; NoOpenTime when the open time runs out before `duration`.
        """
        start = _utc(start)
        if duration < timedelta(0):
            raise ValueError(f"a negative duration: {duration}")
        remaining = duration
        if not remaining:
            return start
        for interval_start, interval_end in self._intervals_after(start):
            begin = max(interval_start, start)
            if remaining <= interval_end - begin:
                return begin + remaining
            remaining -= interval_end - begin
        raise NoOpenTime(f"calendar {self.id!r} has no open time for {duration} after {start.isoformat()}")

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """The instant, in UTC, `days` business days after `start`: on the `days`-th open day after the one
        the clock starts on (`start`, or the next opening when closed), as much of that day's open time
        elapsed as had of the starting day's. 09:00 + 2 business days on a 09:00-17:00 week is 09:00 two
        open days later; Friday 16:30 + 1 is Monday 16:30. Errors: ValueError for negative days;
        NoOpenTime when the calendar runs out of open days."""
        if days < 0:
            raise ValueError(f"negative business days: {days}")
        begin = self.next_open(start)
        if begin is None:
            raise NoOpenTime(f"calendar {self.id!r} has no open time after {_utc(start).isoformat()}")
        day = begin.astimezone(self.tz).date()
        elapsed = self.business_time(self._instant(day, 0), begin)
        for _ in range(days):
            following = self._next_day(day)
            while following is not None and not self._intervals_on(following):
                if (following - day).days > SEARCH_DAYS:
                    following = None
                    break
                following = self._next_day(following)
            if following is None:
                raise NoOpenTime(f"calendar {self.id!r} has no open day {days} business days after {begin}")
            day = following
        if not elapsed:
            # At the opening: the day's first open instant, not its midnight.
            return self._intervals_on(day)[0][0]
        return self.add_business_time(self._instant(day, 0), elapsed)

    def _intervals_after(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals (UTC, in order, not overlapping) that end after `at`, until `SEARCH_DAYS`
        local days pass without one (a calendar without weekly hours: until its last override)."""
        day: date | None = at.astimezone(self.tz).date() - timedelta(days=1)
        last_open = day
        while day is not None and (not self._weekly or (day - last_open).days <= SEARCH_DAYS):
            for start, end in self._intervals_on(day):
                if end > at:
                    last_open = day
                    yield start, end
            day = self._next_day(day)

    def _next_day(self, day: date) -> date | None:
        if self._weekly:
            return day + timedelta(days=1)
        index = bisect.bisect_right(self._open_overrides, day)
        return self._open_overrides[index] if index < len(self._open_overrides) else None

    def _compute_intervals_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        intervals = []
        for start, end in self.spans_on(day):
            interval = (self._instant(day, start), self._instant(day, end))
            if interval[0] < interval[1]:  # a span inside the skipped hour is empty
                intervals.append(interval)
        return tuple(intervals)

    def _instant(self, day: date, minute: int) -> datetime:
        """The first instant (UTC) at which the local clock shows `minute` of `day` or later."""
        if minute == DAY_MINUTES:
            day, minute = day + timedelta(days=1), 0
        wall = datetime.combine(day, time(minute // 60, minute % 60))
        first = wall.replace(tzinfo=self.tz).astimezone(UTC)  # fold=0: the first occurrence when repeated
        if first.astimezone(self.tz).replace(tzinfo=None) == wall:
            return first
        # Skipped by clocks going forward: find the jump, between the readings of `wall` with the offset
        # after (earlier instant, shows less) and before the change (later instant, shows more).
        low = int(wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC).timestamp())
        high = int(first.timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, self.tz).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC)


def always_open() -> Calendar:
    """The built-in `24x7` calendar: open every minute of every day (UTC)."""
    return Calendar(ALWAYS_OPEN_ID, ZoneInfo("UTC"), {day: ((0, DAY_MINUTES),) for day in WEEKDAYS})


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a naive datetime {at.isoformat()}: pass an aware one")
    return at.astimezone(UTC)


def spans_by_weekday(hours: Mapping[str, Iterable[str]]) -> dict[str, tuple[Span, ...]]:
    """{"mon": ["09:00-12:00"]} → {"mon": ((540, 720),)}; errors name the weekday."""
    parsed = {}
    for day, texts in hours.items():
        try:
            parsed[day] = parse_spans(list(texts))
        except ValueError as error:
            raise ValueError(f"{day}: {error}") from error
    return parsed
