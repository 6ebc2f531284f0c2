"""`switchboard sla due` on the command line (no servers: it reads the config alone)."""

from __future__ import annotations

from click.testing import CliRunner

from switchboard.cli import main


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
