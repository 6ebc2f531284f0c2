"""`switchboard sla due` on the command line (no servers: it reads the config alone)."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from shared.settings import EXAMPLE_CONFIG
from switchboard.cli import main

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def test_sla_due_adds_the_duration_on_the_calendar_and_keeps_the_offset():
    result = CliRunner().invoke(main, ["sla", "due", "24x7", "2026-12-04T16:30:00+01:00", "2d"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "2026-12-06T16:30:00+01:00"


def test_sla_due_explains_what_it_cannot_read():
    runner = CliRunner()
    assert "no calendar 'mars'" in runner.invoke(main, ["sla", "due", "mars", "2026-12-04T16:30:00+01:00", "1h"]).output
    assert "give the offset" in runner.invoke(main, ["sla", "due", "24x7", "2026-12-04T16:30:00", "1h"]).output
    assert (
        "use 90s, 30m, 4h or 2d" in runner.invoke(main, ["sla", "due", "24x7", "2026-12-04T16:30:00Z", "soon"]).output
    )


def test_sla_due_counts_business_time_and_business_days_on_a_configured_calendar(tmp_path):
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["calendars"] = [
        {"id": "berlin", "timezone": "Europe/Berlin", "hours": {day: ["09:00-17:00"] for day in WEEKDAYS}}
    ]
    path = tmp_path / "desk.yaml"
    path.write_text(yaml.safe_dump(config))

    def due(*args: str) -> str:
        result = CliRunner().invoke(main, ["sla", "due", "berlin", *args], env={"SWITCHBOARD_CONFIG": str(path)})
        assert result.exit_code == 0, result.output
        return result.output.strip()

    # Friday 16:30: an hour of open time is half an hour on Friday and half on Monday morning …
    assert due("2026-12-04T16:30:00+01:00", "1h") == "2026-12-07T09:30:00+01:00"
    # … and two business days end at the same time of day on Tuesday.
    assert due("2026-12-04T16:30:00+01:00", "2d") == "2026-12-08T16:30:00+01:00"
