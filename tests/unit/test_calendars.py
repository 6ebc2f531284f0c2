"""Business calendars (shared/calendars.py): examples, config errors, and the arithmetic against a brute-force
minute-by-minute reference over random calendars and time zones with and without daylight saving."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.calendars import (
    DAY_MINUTES,
    WEEKDAYS,
    Calendar,
    Holidays,
    NoOpenTime,
    always_open,
    ics_holidays,
    parse_spans,
    spans_by_weekday,
)
from shared.config import ConfigError, DeskConfig, load_config
from shared.settings import EXAMPLE_CONFIG

BERLIN = ZoneInfo("Europe/Berlin")
SPLIT = ["09:00-12:00", "13:00-18:00"]


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def office(**changes) -> Calendar:
    """Berlin, Monday to Friday with a lunch break, closed at the weekend."""
    options = {"holidays": Holidays(), "overrides": None} | changes
    return Calendar("office", BERLIN, spans_by_weekday({day: SPLIT for day in WEEKDAYS[:5]}), **options)


def test_split_shifts_close_for_lunch():
    calendar = office()
    assert calendar.is_open(berlin(2026, 12, 7, 11, 59))
    assert not calendar.is_open(berlin(2026, 12, 7, 12, 0))
    assert calendar.next_open(berlin(2026, 12, 7, 12, 30)) == berlin(2026, 12, 7, 13, 0)
    assert calendar.next_close(berlin(2026, 12, 7, 10, 0)) == berlin(2026, 12, 7, 12, 0)
    assert calendar.business_time(berlin(2026, 12, 7, 0, 0), berlin(2026, 12, 8, 0, 0)) == timedelta(hours=8)
    # Friday 17:00 + 2 h: one hour on Friday, the other on Monday morning.
    assert calendar.add_business_time(berlin(2026, 12, 11, 17, 0), timedelta(hours=2)) == berlin(2026, 12, 14, 10, 0)


def test_results_are_utc_and_an_open_instant_is_its_own_next_open():
    calendar = office()
    at = berlin(2026, 12, 7, 10, 15)
    assert calendar.next_open(at) == at and calendar.next_open(at).tzinfo is UTC
    closed = berlin(2026, 12, 6, 10, 0)  # a Sunday
    assert calendar.next_close(closed) == closed


def test_a_duration_ending_at_a_close_is_due_at_the_close():
    assert office().add_business_time(berlin(2026, 12, 7, 13, 0), timedelta(hours=5)) == berlin(2026, 12, 7, 18, 0)


def test_public_holidays_of_a_subdivision_come_from_the_holidays_library():
    # International Women's Day is a public holiday in Berlin only; Good Friday everywhere in Germany.
    womens_day, good_friday = berlin(2027, 3, 8, 10, 0), berlin(2026, 4, 3, 10, 0)
    in_berlin = office(holidays=Holidays(country="DE", subdivision="BE"))
    in_germany = office(holidays=Holidays(country="DE"))
    assert not in_berlin.is_open(womens_day) and in_germany.is_open(womens_day)
    assert not in_berlin.is_open(good_friday) and not in_germany.is_open(good_friday)
    assert in_berlin.next_open(womens_day) == berlin(2027, 3, 9, 9, 0)


def test_listed_holidays_and_partial_day_overrides():
    calendar = office(
        holidays=Holidays(frozenset({date(2026, 12, 24)}), "DE", "BE"),
        overrides={date(2026, 12, 31): parse_spans(["09:00-13:00"]), date(2026, 12, 26): parse_spans(["10:00-12:00"])},
    )
    assert not calendar.is_open(berlin(2026, 12, 24, 10, 0))
    assert calendar.business_time(berlin(2026, 12, 31), berlin(2027, 1, 1)) == timedelta(hours=4)
    assert not calendar.is_open(berlin(2026, 12, 31, 13, 0))
    # An override wins over a public holiday (and opens a Saturday).
    assert calendar.is_open(berlin(2026, 12, 26, 11, 0))


ICS = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Switchboard tests//EN
BEGIN:VEVENT
UID:1
SUMMARY:Company day
DTSTART;VALUE=DATE:20261207
END:VEVENT
BEGIN:VEVENT
UID:2
SUMMARY:Winter break
DTSTART;VALUE=DATE:20261228
DTEND;VALUE=DATE:20261231
END:VEVENT
BEGIN:VEVENT
UID:3
SUMMARY:Moved
STATUS:CANCELLED
DTSTART;VALUE=DATE:20261208
END:VEVENT
END:VCALENDAR
"""


def test_ics_all_day_events_are_holidays_and_dtend_is_exclusive():
    assert ics_holidays(ICS) == {date(2026, 12, 7), date(2026, 12, 28), date(2026, 12, 29), date(2026, 12, 30)}


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ("DTSTART:20261207T090000Z", "starts at a time of day"),
        ("DTSTART;VALUE=DATE:20261207\nRRULE:FREQ=YEARLY", "repeats"),
        ("SUMMARY:nothing", "no DTSTART"),
    ],
)
def test_ics_events_that_are_not_all_day_dates_are_refused(event, problem):
    text = f"BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:x\n{event}\nEND:VEVENT\nEND:VCALENDAR\n"
    with pytest.raises(ValueError, match=problem):
        ics_holidays(text)


def test_spring_forward_day_has_23_hours_and_a_bound_in_the_skipped_hour_opens_at_the_jump():
    sundays = Calendar("sun", BERLIN, {"sun": parse_spans(["00:00-24:00"])})
    assert sundays.business_time(berlin(2026, 3, 29), berlin(2026, 3, 30)) == timedelta(hours=23)
    skipped = Calendar("sun", BERLIN, {"sun": parse_spans(["02:30-04:00"])})
    jump = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 02:00 CET becomes 03:00 CEST
    assert skipped.next_open(berlin(2026, 3, 29, 0, 0)) == jump
    assert skipped.business_time(berlin(2026, 3, 29), berlin(2026, 3, 30)) == timedelta(hours=1)
    inside = Calendar("sun", BERLIN, {"sun": parse_spans(["02:00-02:30"])})
    assert inside.business_time(berlin(2026, 3, 29), berlin(2026, 3, 30)) == timedelta(0)


def test_fall_back_day_has_25_hours_and_the_repeated_hour_stays_as_the_first_pass_ended():
    sundays = Calendar("sun", BERLIN, {"sun": parse_spans(["00:00-24:00"])})
    assert sundays.business_time(berlin(2026, 10, 25), berlin(2026, 10, 26)) == timedelta(hours=25)
    first_pass, second_pass = datetime(2026, 10, 25, 0, 15, tzinfo=UTC), datetime(2026, 10, 25, 1, 15, tzinfo=UTC)
    across = Calendar("sun", BERLIN, {"sun": parse_spans(["01:00-03:00"])})
    assert across.is_open(first_pass) and across.is_open(second_pass)
    assert across.business_time(berlin(2026, 10, 25), berlin(2026, 10, 26)) == timedelta(hours=3)
    within = Calendar("sun", BERLIN, {"sun": parse_spans(["02:00-02:30"])})
    assert within.is_open(first_pass) and not within.is_open(second_pass)


def test_business_hours_across_both_daylight_saving_changes():
    calendar = office()
    # Friday 16:00 CET → Monday 10:00 CEST: 2 h Friday, 1 h Monday, whatever the weekend's clocks did.
    assert calendar.business_time(berlin(2026, 3, 27, 16, 0), berlin(2026, 3, 30, 10, 0)) == timedelta(hours=3)
    assert calendar.add_business_time(berlin(2026, 10, 23, 16, 0), timedelta(hours=3)) == berlin(2026, 10, 26, 10, 0)


def test_24x7_counts_wall_time_and_never_closes():
    calendar = always_open()
    start, end = berlin(2026, 3, 28, 12, 0), berlin(2026, 3, 30, 12, 0)
    # (`end - start` would be 48 h: Python subtracts datetimes sharing a ZoneInfo as wall times.)
    assert calendar.business_time(start, end) == timedelta(hours=47)
    assert calendar.next_close(start) is None
    assert calendar.add_business_time(start, timedelta(hours=47)) == end


def test_a_calendar_without_open_hours_answers_without_spinning():
    never = Calendar("never", BERLIN, {})
    at = berlin(2026, 12, 1, 9, 0)
    assert never.next_open(at) is None and not never.is_open(at)
    assert never.business_time(at, at + timedelta(days=400)) == timedelta(0)
    with pytest.raises(NoOpenTime, match="'never' has no open time"):
        never.add_business_time(at, timedelta(minutes=1))
    once = Calendar("once", BERLIN, {}, overrides={date(2030, 1, 2): parse_spans(["09:00-10:00"])})
    assert once.next_open(at) == berlin(2030, 1, 2, 9, 0)
    assert once.add_business_time(at, timedelta(minutes=30)) == berlin(2030, 1, 2, 9, 30)


def test_naive_datetimes_and_negative_durations_are_refused():
    with pytest.raises(ValueError, match="naive"):
        office().is_open(datetime(2026, 12, 7, 10, 0))
    with pytest.raises(ValueError, match="negative"):
        office().add_business_time(berlin(2026, 12, 7, 10, 0), timedelta(minutes=-1))


@pytest.mark.parametrize(
    ("texts", "problem"),
    [
        (["9:00-12:00"], "not a time of day"),
        (["09:00-24:30"], "not a time of day"),
        (["24:00-24:00"], "not a time of day"),
        (["12:00-09:00"], "ends before it starts"),
        (["09:00-12:00", "11:00-13:00"], "overlap"),
        (["09:00"], "not an interval"),
    ],
)
def test_malformed_intervals(texts, problem):
    with pytest.raises(ValueError, match=problem):
        parse_spans(texts)


def test_adjacent_intervals_join_and_a_whole_day_is_allowed():
    assert parse_spans(["13:00-18:00", "09:00-13:00"]) == ((540, 1080),)
    assert parse_spans(["00:00-24:00"]) == ((0, DAY_MINUTES),)


# --- configuration -------------------------------------------------------------------------------------------


def test_example_config_documents_a_calendar_and_an_agent_working_by_it():
    config = load_config(EXAMPLE_CONFIG)
    agents = [agent for agent in config.agents if agent.calendar]
    assert agents and all(config.calendar(agent.calendar) for agent in agents)
    berlin_desk = config.calendar("berlin")
    assert not berlin_desk.is_open(berlin(2026, 12, 24, 10, 0))  # listed
    assert not berlin_desk.is_open(berlin(2026, 12, 25, 10, 0))  # DE-BE public holiday
    assert berlin_desk.is_open(berlin(2026, 12, 31, 12, 0)) and not berlin_desk.is_open(berlin(2026, 12, 31, 14, 0))
    assert config.calendar("24x7").is_open(berlin(2026, 12, 25, 3, 0))
    assert DeskConfig.model_validate(config.model_dump()).calendar("berlin").is_open(berlin(2026, 12, 7, 10, 0))


def _config_with(tmp_path: Path, calendars_yaml: str, agent_calendar: str = "berlin") -> Path:
    text = EXAMPLE_CONFIG.read_text()
    start = text.index("calendars:\n")
    end = text.index("\n# What a ticket gets")
    text = text[:start] + calendars_yaml + text[end:]
    text = text.replace("calendar: berlin ", f"calendar: {agent_calendar} ")
    path = tmp_path / "desk.yaml"
    path.write_text(text)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def test_ics_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "closed.ics").write_text(ICS)
    path = _config_with(
        tmp_path,
        'calendars:\n  - id: berlin\n    timezone: Europe/Berlin\n    hours: {mon: ["09:00-18:00"]}\n'
        "    holidays: {ics: closed.ics}\n",
    )
    calendar = load_config(path).calendar("berlin")
    assert not calendar.is_open(berlin(2026, 12, 7, 10, 0)) and not calendar.is_open(berlin(2026, 12, 28, 10, 0))
    assert calendar.is_open(berlin(2026, 12, 14, 10, 0))


UTC_CALENDAR = "calendars:\n  - id: berlin\n    timezone: UTC\n"


@pytest.mark.parametrize(
    ("calendars_yaml", "key", "problem"),
    [
        ("calendars:\n  - id: berlin\n    timezone: Europe/Berlinn\n", "calendars.0.timezone", "unknown IANA"),
        (UTC_CALENDAR + '    hours:\n      mon: ["09:00-12:00", "11:00-13:00"]\n', "calendars.0.hours.mon", "overlap"),
        (UTC_CALENDAR + '    hours: {fun: ["09:00-12:00"]}\n', "calendars.0.hours.fun.[key]", "mon"),
        (UTC_CALENDAR + "    holidays: {country: XX}\n", "calendars.0.holidays.country", "no country 'XX'"),
        (
            UTC_CALENDAR + "    holidays: {country: DE, subdivision: ZZ}\n",
            "calendars.0.holidays.subdivision",
            "no subdivision 'ZZ'",
        ),
        (UTC_CALENDAR + "    holidays: {ics: missing.ics}\n", "calendars.0.holidays.ics", "cannot read"),
        (
            UTC_CALENDAR + '    overrides: {"2026-12-31": ["13:00-09:00"]}\n',
            "calendars.0.overrides.2026-12-31",
            "ends before",
        ),
        ("calendars:\n  - id: 24x7\n    timezone: UTC\n", "calendars.0.id", "built in"),
    ],
)
def test_calendar_config_errors_name_the_key(tmp_path, calendars_yaml, key, problem):
    problems = _problems(_config_with(tmp_path, calendars_yaml))
    assert any(f": {key}:" in p and problem in p for p in problems), problems


def test_an_agent_calendar_must_exist(tmp_path):
    path = _config_with(tmp_path, "calendars: []\n", agent_calendar="nowhere")
    problems = _problems(path)
    assert len(problems) == 1 and "agents.3.calendar: unknown calendar 'nowhere'" in problems[0], problems
    always = load_config(_config_with(tmp_path, "calendars: []\n", agent_calendar="24x7"))
    assert always.agent("lena").calendar == "24x7"


def test_calendar_ids_are_unique(tmp_path):
    twice = "calendars:\n  - {id: berlin, timezone: UTC}\n  - {id: berlin, timezone: UTC}\n"
    assert any("calendars.1.id: another calendar is 'berlin'" in p for p in _problems(_config_with(tmp_path, twice)))


# --- the arithmetic against a minute-by-minute reference ----------------------------------------------------

# Daylight saving forward and back in Europe and America (Havana and Santiago change at midnight), a 30-minute
# change (Lord Howe) and none (Shanghai).
ZONES = ["Europe/Berlin", "America/New_York", "America/Havana", "America/Santiago", "Australia/Lord_Howe",
         "Asia/Shanghai"]  # fmt: skip
# Instants near the changes of 2026 in those zones; windows start a little before or after.
NEAR_CHANGES = [datetime(2026, m, d, tzinfo=UTC) for m, d in [(3, 8), (3, 29), (4, 5), (9, 6), (10, 4), (10, 25),
                                                               (11, 1), (12, 1)]]  # fmt: skip
WINDOW_MINUTES = 4 * DAY_MINUTES


@st.composite
def day_spans(draw) -> tuple[tuple[int, int], ...]:
    bounds = sorted(draw(st.sets(st.integers(0, DAY_MINUTES), max_size=6)))
    if len(bounds) % 2:
        bounds = bounds[:-1]
    return tuple(zip(bounds[::2], bounds[1::2], strict=True))


@st.composite
def calendars_and_windows(draw):
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    week = {day: draw(day_spans()) for day in WEEKDAYS if draw(st.booleans())}
    start = draw(st.sampled_from(NEAR_CHANGES)) + timedelta(minutes=draw(st.integers(-3 * DAY_MINUTES, DAY_MINUTES)))
    local_day = start.astimezone(tz).date()
    window_days = [local_day + timedelta(days=offset) for offset in range(-1, 6)]
    closed = frozenset(draw(st.sets(st.sampled_from(window_days), max_size=2)))
    overrides = {day: draw(day_spans()) for day in draw(st.sets(st.sampled_from(window_days), max_size=2))}
    calendar = Calendar("random", tz, week, Holidays(closed), overrides)
    return calendar, start


def reference_open_minutes(calendar: Calendar, start: datetime) -> list[bool]:
    """Minute i after `start` is open when the highest wall-clock time shown so far lies in a span of its date."""
    opened, highest = [], None
    for index in range(-180, WINDOW_MINUTES):
        wall = (start + timedelta(minutes=index)).astimezone(calendar.tz).replace(tzinfo=None)
        highest = wall if highest is None or wall > highest else highest
        if index >= 0:
            minute = highest.hour * 60 + highest.minute
            opened.append(any(s <= minute < e for s, e in calendar.spans_on(highest.date())))
    return opened


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=calendars_and_windows(), data=st.data())
def test_arithmetic_matches_the_minute_by_minute_reference(case, data):
    calendar, start = case
    opened = reference_open_minutes(calendar, start)
    at = lambda index: start + timedelta(minutes=index)  # noqa: E731
    # The reference is exact for the whole window except where it cannot see past its end.
    last = WINDOW_MINUTES - 1
    for index in data.draw(st.lists(st.integers(0, last), min_size=20, max_size=20)):
        assert calendar.is_open(at(index)) == opened[index]
        following_open = next((j for j in range(index, last) if opened[j]), None)
        if following_open is not None:
            assert calendar.next_open(at(index)) == at(following_open)
        following_closed = next((j for j in range(index, last) if not opened[j]), None)
        if following_closed is not None:
            assert calendar.next_close(at(index)) == at(following_closed)
        end = data.draw(st.integers(index, last))
        assert calendar.business_time(at(index), at(end)) == timedelta(minutes=sum(opened[index:end]))
        wanted = data.draw(st.integers(1, 600))
        elapsed, reached = 0, None
        for j in range(index, last):
            elapsed += opened[j]
            if elapsed == wanted:
                reached = j + 1
                break
        if reached is not None:
            assert calendar.add_business_time(at(index), timedelta(minutes=wanted)) == at(reached)


instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))


@settings(max_examples=150, deadline=None)
@given(case=calendars_and_windows(), offsets=st.lists(st.integers(0, 10**7), min_size=3, max_size=3))
def test_business_time_is_additive_bounded_by_wall_time_and_inverted_by_add_business_time(case, offsets):
    calendar, start = case
    # Sub-second instants within a few days of the window start.
    first, middle, last = sorted(start + timedelta(milliseconds=offset * 37) for offset in offsets)
    total = calendar.business_time(first, last)
    assert total == calendar.business_time(first, middle) + calendar.business_time(middle, last)
    assert timedelta(0) <= total <= last - first
    reached = calendar.add_business_time(first, total)
    assert reached <= last
    assert calendar.next_open(reached) == calendar.next_open(last)


@settings(max_examples=150, deadline=None)
@given(case=calendars_and_windows(), offset=st.integers(-(10**8), 10**8))
def test_is_open_agrees_with_next_open_and_next_close(case, offset):
    calendar, start = case
    at = start + timedelta(milliseconds=offset)
    opens, closes = calendar.next_open(at), calendar.next_close(at)
    if calendar.is_open(at):
        assert opens == at and (closes is None or (closes > at and not calendar.is_open(closes)))
    else:
        assert closes == at and (opens is None or (opens > at and calendar.is_open(opens)))
