"""SLA clocks (services.sla.clocks) on calendar time and on a brute-force business calendar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from services.sla.clocks import Clock, Targets, TicketClocks
from shared.calendars import Calendar, parse_spans
from shared.sla_policies import BusinessDays

MINUTE = timedelta(minutes=1)
MONDAY = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class MinuteCalendar:
    """The reference: open minute by minute, counted one minute at a time (whole minutes only)."""

    open_hours: tuple[int, int] = (9, 17)

    def is_open(self, minute: datetime) -> bool:
        return minute.weekday() < 5 and self.open_hours[0] <= minute.hour < self.open_hours[1]

    def business_time(self, start: datetime, end: datetime) -> timedelta:
        counted, minute = timedelta(0), start
        while minute < end:
            counted += MINUTE if self.is_open(minute) else timedelta(0)
            minute += MINUTE
        return counted

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        minute, left = start, duration
        while left > timedelta(0) or not self.is_open(minute):
            if left <= timedelta(0):
                return minute
            if self.is_open(minute):
                left -= MINUTE
            minute += MINUTE
        return minute


OFFICE = MinuteCalendar()
IN_OFFICE = dict.fromkeys(("first_response", "next_response", "resolution"), OFFICE)
TARGETS = Targets(first_response=timedelta(hours=1), next_response=timedelta(hours=2), resolution=timedelta(hours=8))


def at(minutes: int) -> datetime:
    return MONDAY + timedelta(minutes=minutes)


def test_a_clock_started_outside_business_hours_counts_from_the_opening():
    clock = Clock.start("first_response", timedelta(hours=1), MONDAY)  # 08:00, an hour before opening
    assert clock.due_at(OFFICE) == MONDAY.replace(hour=10)
    # Friday 16:30 + 1 business hour: half an hour on Friday, half on Monday morning.
    friday = datetime(2026, 12, 4, 16, 30, tzinfo=UTC)
    assert Clock.start("first_response", timedelta(hours=1), friday).due_at(OFFICE) == datetime(
        2026, 12, 7, 9, 30, tzinfo=UTC
    )


def test_pending_pauses_resolution_and_the_customers_reply_resumes_it_with_the_time_used_kept():
    clocks = TicketClocks().created(at(60), TARGETS, "SB-1", IN_OFFICE)  # 09:00
    clocks = clocks.status_changed("pending", at(180), TARGETS, IN_OFFICE)  # 11:00: two hours used
    paused = clocks.get("resolution")
    assert paused.paused and paused.due_at(OFFICE) is None and paused.used == timedelta(hours=2)
    assert paused.state(at(600), OFFICE) == "paused"
    # Back to open at 15:00 the next day (pending the whole night and morning): six hours left.
    reopened = clocks.status_changed("open", at(24 * 60 + 420), TARGETS, IN_OFFICE).get("resolution")
    assert reopened.due_at(OFFICE) == datetime(2026, 12, 2, 13, 0, tzinfo=UTC)
    assert reopened.paused_for == timedelta(hours=28)


def test_solved_meets_resolution_and_a_reopen_resumes_it_where_it_left_off():
    clocks = TicketClocks().created(at(60), TARGETS, "SB-1", IN_OFFICE)
    clocks = clocks.agent_replied(at(90), IN_OFFICE)
    solved = clocks.status_changed("solved", at(120), TARGETS, IN_OFFICE)
    assert solved.get("resolution").state(at(200), OFFICE) == "met"
    reopened = solved.status_changed("open", at(240), TARGETS, IN_OFFICE).get("resolution")
    # Seven business hours left at 12:00: five today, two tomorrow morning.
    assert reopened.used == timedelta(hours=1) and reopened.due_at(OFFICE) == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    # Closing a solved ticket keeps its resolution met.
    assert solved.status_changed("closed", at(300), TARGETS, IN_OFFICE).get("resolution").outcome == "met"


def test_first_response_is_met_by_the_first_public_reply_and_never_paused():
    clocks = TicketClocks().created(at(60), TARGETS, "SB-1", IN_OFFICE)
    clocks = clocks.status_changed("pending", at(70), TARGETS, IN_OFFICE)
    assert clocks.get("first_response").running, "pending does not pause first response"
    met = clocks.agent_replied(at(100), IN_OFFICE).get("first_response")
    assert met.outcome == "met" and met.used == timedelta(minutes=40)


def test_next_response_runs_from_the_oldest_unanswered_customer_message():
    clocks = TicketClocks().created(at(60), TARGETS, "SB-1", IN_OFFICE)
    # The first message is covered by the first response; a second one before it is answered too.
    clocks = clocks.customer_wrote(at(70), TARGETS, "m2", IN_OFFICE)
    assert clocks.get("next_response") is None
    clocks = clocks.agent_replied(at(80), IN_OFFICE)
    clocks = clocks.customer_wrote(at(100), TARGETS, "m3", IN_OFFICE).customer_wrote(at(130), TARGETS, "m4", IN_OFFICE)
    following = clocks.get("next_response")
    assert following.cause == "m3" and following.due_at(OFFICE) == at(100) + timedelta(hours=2)
    answered = clocks.agent_replied(at(150), IN_OFFICE)
    assert answered.get("next_response").outcome == "met"
    # The next customer message starts a new clock of its own (one breach at most per message).
    again = answered.customer_wrote(at(200), TARGETS, "m5", IN_OFFICE).get("next_response")
    assert again.cause == "m5" and again.outcome is None and again.used == timedelta(0)


def test_solving_without_an_answer_stops_the_response_clocks():
    clocks = (
        TicketClocks().created(at(60), TARGETS, "SB-1", IN_OFFICE).status_changed("solved", at(90), TARGETS, IN_OFFICE)
    )
    assert clocks.get("first_response").outcome == "stopped"


def test_a_new_priority_keeps_the_time_used_since_the_original_start_and_recorded_breaches():
    clocks = TicketClocks().created(at(60), TARGETS, "SB-1", IN_OFFICE).breached("first_response")
    urgent = Targets(first_response=timedelta(minutes=30), resolution=timedelta(hours=4))
    moved = clocks.retargeted(urgent, IN_OFFICE)
    assert moved.get("first_response").due_at(OFFICE) == at(90)
    assert moved.get("first_response").breached
    # A metric the new policy does not measure is dropped.
    assert (
        TicketClocks()
        .created(at(60), TARGETS, "SB-1", IN_OFFICE)
        .retargeted(Targets(resolution=timedelta(hours=1)), IN_OFFICE)
        .get("first_response")
        is None
    )


def test_warnings_by_fraction_and_by_business_time_before_due_and_none_twice_after_a_pause():
    clock = Clock.start("resolution", timedelta(hours=4), at(60))
    assert clock.warnings([0.5, timedelta(minutes=30)], OFFICE) == [(0.5, at(180)), (0.875, at(270))]
    # Paused after three hours and resumed: the half-way warning is behind it.
    resumed = clock.pause(at(240), OFFICE).resume(at(300))
    assert resumed.warnings([0.5, timedelta(minutes=30)], OFFICE) == [(0.875, at(330))]


minutes = st.integers(min_value=0, max_value=5 * 24 * 60)


@given(start=minutes, target=st.integers(min_value=1, max_value=3 * 8 * 60), pauses=st.lists(minutes, max_size=6))
def test_the_due_instant_is_where_the_used_time_reaches_the_target(start, target, pauses):
    """Against the minute-by-minute reference: however the clock was paused and resumed, running it on
    to its due instant uses exactly its target."""
    clock = Clock.start("resolution", timedelta(minutes=target), at(start))
    moments = sorted(at(start + offset) for offset in pauses)
    for index, moment in enumerate(moments):
        clock = clock.pause(moment, OFFICE) if index % 2 == 0 else clock.resume(moment)
    clock = clock.resume(moments[-1] if moments else at(start))
    due = clock.due_at(OFFICE)
    if clock.used >= clock.target:
        assert due == clock.running_since
    else:
        assert clock.used_at(due, OFFICE) == clock.target
        assert OFFICE.is_open(due - MINUTE), "the target is reached at the end of an open minute"


@given(start=minutes, split=minutes, end=minutes)
def test_used_time_is_the_sum_of_the_running_stretches(start, split, end):
    start, split, end = sorted((start, split, end))
    clock = Clock.start("resolution", timedelta(hours=100), at(start))
    whole = clock.used_at(at(end), OFFICE)
    paused_and_resumed = clock.pause(at(split), OFFICE).resume(at(split))
    assert paused_and_resumed.used_at(at(end), OFFICE) == whole
    assert whole <= at(end) - at(start)


def test_a_target_in_business_days_is_due_at_the_same_point_of_the_day_that_many_open_days_later():
    """On a Berlin office calendar with a lunch break: a ticket at Friday 16:30 with 2 business days to
    resolve is due Tuesday 16:30; its target is the open time in between (Friday's half hour, Monday's
    seven hours, Tuesday's six and a half)."""
    berlin = ZoneInfo("Europe/Berlin")
    week = {day: parse_spans(["09:00-12:00", "13:00-17:00"]) for day in ("mon", "tue", "wed", "thu", "fri")}
    office = dict.fromkeys(("first_response", "next_response", "resolution"), Calendar("office", berlin, week))
    friday = datetime(2026, 12, 4, 16, 30, tzinfo=berlin)
    clocks = TicketClocks().created(friday, Targets(resolution=BusinessDays(2)), "SB-1", office)
    resolution = clocks.get("resolution")
    assert resolution.target == timedelta(hours=14)
    assert resolution.due_at(office["resolution"]) == datetime(2026, 12, 8, 16, 30, tzinfo=berlin)
