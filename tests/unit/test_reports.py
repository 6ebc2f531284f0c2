"""Report figures (services/reports/figures.py), their rendering, and the streaming export, in pure code."""

from __future__ import annotations

import asyncio
import json
import math
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reports.build import fold_for
from services.reports.export import export_lines, line_of
from services.reports.figures import Window, age_bucket, median, p90
from services.reports.render import as_csv, as_text, plot
from shared.calendars import zone
from shared.config import ConfigError, load_config
from shared.events import (
    ContactSummary,
    CsatRated,
    MessageAdded,
    SlaBreached,
    SlaDeadlineSet,
    SlaMet,
    StatusChanged,
    TicketCreated,
)
from switchboard.reports_cli import parse_instant

CONFIG = load_config(Path(__file__).resolve().parents[1] / "fixtures" / "reports" / "config.yaml")
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)
WEEK = Window(MONDAY, MONDAY + timedelta(days=7))


def _envelope(ticket: str, at: datetime) -> dict:
    return {"event_id": uuid.uuid4(), "occurred_at": at, "ticket_id": ticket}


def created(ticket: str, at: datetime, team: str = "support", channel: str = "form") -> TicketCreated:
    return TicketCreated(
        **_envelope(ticket, at), channel=channel, subject="s", contact=ContactSummary(contact_id="c1"),
        team=team, category="general", priority="normal",
    )  # fmt: skip


def message(ticket: str, at: datetime, author: str, agent: str | None = None, internal: bool = False) -> MessageAdded:
    return MessageAdded(
        **_envelope(ticket, at), message_id=uuid.uuid4(), author=author, channel="form", text="t",
        agent_id=agent, received_at=at, internal=internal,
    )  # fmt: skip


def status(ticket: str, at: datetime, to: str, assignee: str | None = "ana", reason: str | None = None, team="support"):
    return StatusChanged(
        **_envelope(ticket, at), from_status="open", to_status=to, actor="ana", team=team,
        assignee_id=assignee, reason=reason, resolution=1,
    )  # fmt: skip


@given(st.lists(st.floats(min_value=0, max_value=1e7, allow_nan=False), min_size=1, max_size=200))
def test_median_and_p90_lie_within_the_values_and_p90_is_a_value_with_90_percent_at_or_below(values):
    middle, high = median(values), p90(values)
    assert min(values) <= middle <= max(values)
    assert high in values and middle <= high or math.isclose(middle, high)
    assert sum(value <= high for value in values) >= 0.9 * len(values)
    assert sum(value < high for value in values) < 0.9 * len(values)


def test_no_values_no_median():
    assert median([]) is None and p90([]) is None


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)))
def test_every_age_falls_in_exactly_one_bucket(age):
    days = age / timedelta(days=1)
    assert age_bucket(age) == ("<1d" if days < 1 else "1-3d" if days < 3 else "3-7d" if days < 7 else ">=7d")


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=40))
def test_sla_compliance_is_met_on_time_over_due_and_a_breach_met_late_counts_once(clocks):
    """Each clock: met or not; when not met, breached first (an `sla.breached`) or only met late."""
    fold = fold_for(CONFIG)
    met = 0
    for index, (on_time, announced) in enumerate(clocks):
        ticket = f"RP-{1001 + index}"
        start = MONDAY + timedelta(hours=1)
        due = start + timedelta(hours=4)
        fold.add(created(ticket, start))
        fold.add(SlaDeadlineSet(**_envelope(ticket, start), metric="first_response", policy="standard", due_at=due))
        if not on_time and announced:
            fold.add(SlaBreached(**_envelope(ticket, due), metric="first_response", due_at=due))
        done = due - timedelta(hours=1) if on_time else due + timedelta(hours=1)
        fold.add(SlaMet(**_envelope(ticket, done), metric="first_response", due_at=due, met_at=done))
        met += on_time
    sla = fold.figures(WEEK).sla
    if clocks:
        assert sla == [
            {"policy": "standard", "metric": "first_response", "met": met, "due": len(clocks),
             "compliance": met / len(clocks)}
        ]  # fmt: skip
    else:
        assert sla == []


@given(st.integers(min_value=0, max_value=14 * 24 * 60), st.integers(min_value=1, max_value=5 * 24 * 60))
def test_business_time_never_exceeds_calendar_time(start_minute, length):
    fold = fold_for(CONFIG)
    start = MONDAY + timedelta(minutes=start_minute)
    fold.add(created("RP-1001", start))
    fold.add(message("RP-1001", start + timedelta(minutes=length), "agent", "ana"))
    times = fold.figures(Window(MONDAY, MONDAY + timedelta(days=30))).times["first_response"]
    assert times["calendar"]["median"] == length * 60
    assert 0 <= times["business"]["median"] <= length * 60


def test_a_small_week_folds_into_its_figures():
    fold = fold_for(CONFIG)
    for event in [
        created("RP-1001", MONDAY + timedelta(hours=9)),
        message("RP-1001", MONDAY + timedelta(hours=9, minutes=30), "agent", "ana", internal=True),
        message("RP-1001", MONDAY + timedelta(hours=10), "agent", "ana"),
        message("RP-1001", MONDAY + timedelta(hours=11), "customer"),
        message("RP-1001", MONDAY + timedelta(hours=12), "customer"),
        message("RP-1001", MONDAY + timedelta(hours=14), "agent", "ana"),
        status("RP-1001", MONDAY + timedelta(hours=15), "solved"),
        CsatRated(**_envelope("RP-1001", MONDAY + timedelta(hours=16)), resolution=1, score=4, team="support",
                  assignee_id="ana"),
        created("RP-1002", MONDAY + timedelta(days=1, hours=18), team="payments", channel="email"),
        status("RP-1002", MONDAY + timedelta(days=2, hours=1), "solved", None, "deflected", "payments"),
        created("RP-1003", MONDAY - timedelta(days=1)),  # before the window: only in the backlog
        created("RP-1004", MONDAY + timedelta(days=8)),  # after it: nowhere
    ]:  # fmt: skip
        fold.add(event)
    report = fold.figures(WEEK)
    assert report.tickets == {
        "created": 2,
        "by_channel": {"email": 1, "form": 1},
        "by_category": {"general": 2},
        "by_team": {"payments": 1, "support": 1},
    }
    # The internal note is no response; the next response counts from the oldest unanswered message (11:00).
    assert report.times["first_response"]["calendar"] == {"count": 1, "median": 3600.0, "p90": 3600.0}
    assert report.times["next_response"]["calendar"] == {"count": 1, "median": 3 * 3600.0, "p90": 3 * 3600.0}
    assert report.times["resolution"]["business"]["median"] == 6 * 3600.0
    assert report.deflections == 1
    assert report.csat == {"count": 1, "satisfied": 1, "share": 1.0}
    assert [day["by_status"]["new"] for day in report.backlog] == [1, 2, 1, 1, 1, 1, 1]
    assert report.backlog[6]["by_age"] == {"<1d": 0, "1-3d": 0, "3-7d": 0, ">=7d": 1}
    assert report.agents == [
        {"agent": "ana", "solved": 1, "first_responses": 1, "first_response_median": 3600.0,
         "resolution_median": 6 * 3600.0, "csat": {"count": 1, "satisfied": 1, "share": 1.0}}
    ]  # fmt: skip
    only_payments = fold.figures(Window(WEEK.since, WEEK.until, team="payments"))
    assert only_payments.tickets["created"] == 1 and only_payments.agents == [] and only_payments.deflections == 1


def test_the_report_renders_as_tables_csv_and_a_png(tmp_path):
    fold = fold_for(CONFIG)
    fold.add(created("RP-1001", MONDAY + timedelta(hours=9)))
    fold.add(message("RP-1001", MONDAY + timedelta(hours=10), "agent", "ana"))
    report = fold.figures(WEEK)
    text = as_text(report)
    assert "Response and resolution times" in text and "1h 00m" in text
    assert "times,first_response:calendar,median,3600.0" in as_csv(report).splitlines()
    plot(report, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")


def _event_json(index: int) -> bytes:
    at = MONDAY + timedelta(seconds=index)
    return created(f"RP-{1001 + index}", at).model_dump_json().encode()


def test_export_lines_pick_the_kind_and_the_window():
    value = _event_json(0)
    assert json.loads(line_of(value, "events", "jsonl", None, None))["ticket_id"] == "RP-1001"
    assert line_of(value, "messages", "jsonl", None, None) is None
    assert line_of(value, "tickets", "csv", MONDAY + timedelta(hours=1), None) is None
    assert line_of(value, "tickets", "csv", None, None).startswith("RP-1001,2026-11-23T00:00:00Z,form,s,c1")
    assert line_of(b"not json", "events", "jsonl", None, None) is None


def test_the_export_reads_one_record_per_line_and_holds_none_of_the_log():
    """Lazy: each line is made when asked for, from the one record read for it; 10,000 tickets stream through
    with memory that does not grow with the log."""
    read = 0

    async def log(count: int):
        nonlocal read
        for index in range(count):
            read += 1
            yield _event_json(index)

    async def run() -> tuple[int, int]:
        lines = export_lines(log(10_000), "tickets", "csv")
        assert (await anext(lines)).startswith("ticket_id,")
        await anext(lines)
        assert read == 1
        tracemalloc.start()
        written = 0
        async for line in lines:
            written += len(line) > 0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return written, peak

    written, peak = asyncio.run(run())
    assert written == 9_999
    # The log is ~4 MB of JSON; one record and its line are a few kB.
    assert peak < 1_000_000


def _with_digest(tmp_path, digest: str) -> Path:
    path = tmp_path / "config.yaml"
    source = (Path(__file__).resolve().parents[1] / "fixtures" / "reports" / "config.yaml").read_text()
    path.write_text(source.split("reports:")[0] + "reports:\n  digest: " + digest + "\n")
    return path


def test_the_digest_config_is_validated(tmp_path):
    good = load_config(_with_digest(tmp_path, '{channel: C0LEADS, time: "18:30", timezone: Asia/Tokyo, since: 1d}'))
    assert good.reports.digest.minute_of_day() == 18 * 60 + 30 and good.reports.digest.since == timedelta(days=1)
    for digest, key in (
        ('{channel: C0LEADS, time: "25:00"}', "time"),
        ("{channel: C0LEADS, timezone: Mars/Olympus}", "timezone"),
        ("{channel: leads}", "channel"),
        ("{channel: C0LEADS, team: nobody}", "reports.digest.team"),
        ("{channel: C0LEADS, since: 0s}", "since"),
    ):
        with pytest.raises(ConfigError, match=key):
            load_config(_with_digest(tmp_path, digest))


def test_the_digest_is_due_once_its_local_time_has_come_and_reports_the_since_before_it():
    from zoneinfo import ZoneInfo

    from services.reports.digest import due_day, window_of
    from shared.reports_config import Digest

    digest = Digest(channel="C0LEADS", time="09:00", timezone="Europe/Madrid", since=timedelta(days=7))
    assert due_day(digest, datetime(2026, 11, 30, 7, 59, tzinfo=UTC)) is None  # 08:59 in Madrid
    assert due_day(digest, datetime(2026, 11, 30, 8, 0, tzinfo=UTC)).isoformat() == "2026-11-30"
    # 00:30 on 1 December there: that day's digest is not due yet.
    assert due_day(digest, datetime(2026, 11, 30, 23, 30, tzinfo=UTC)) is None
    window = window_of(digest, due_day(digest, datetime(2026, 11, 30, 8, 0, tzinfo=UTC)))
    assert window.until == datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo("Europe/Madrid"))
    assert window.since == window.until - timedelta(days=7)


def test_a_bad_time_zone_is_named_as_the_timezone_option_and_a_bad_date_as_a_date():
    with pytest.raises(click.BadParameter) as bad_zone:
        parse_instant("2026-11-30", "Mars/Olympus")
    assert bad_zone.value.param_hint == "--timezone"
    with pytest.raises(click.BadParameter, match="give a duration"):
        parse_instant("next week", "Europe/Madrid")
    assert parse_instant("2026-11-30", "Europe/Madrid") == datetime(2026, 11, 30, tzinfo=zone("Europe/Madrid"))
