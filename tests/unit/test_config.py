from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.config import ConfigError, load_config
from shared.durations import parse_duration
from shared.settings import EXAMPLE_CONFIG
from switchboard.cli import main


def test_example_config_is_valid_and_documents_a_team_three_agents_and_a_policy():
    config = load_config(EXAMPLE_CONFIG)
    team = config.team("support")
    assert len(team.members) >= 3
    assert all(config.agent(member).slack_user_id.startswith("U") for member in team.members)
    assert config.sla_policy(team.sla_policy).first_response == timedelta(hours=4)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("4h", timedelta(hours=4)),
        ("2d", timedelta(days=2)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "desk.yaml"
    path.write_text(text)
    return path


BROKEN = """\
ticket_prefix: SB
teams:
  - id: support
    name: Support
    slack_channel: C0SUPPORT
    members: [ana, ghost]
    sla_policy: standard
agents:
  - id: ana
    name: Ana
    slack_user_id: U0ANA
    capacity: 0
default_classification:
  team: support
sla_policies:
  - id: standard
    first_response: soon
"""


def test_errors_name_file_line_and_key(tmp_path):
    path = _write(tmp_path, BROKEN)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert any(p.startswith(f"{path}:12: agents.0.capacity:") for p in problems), problems
    assert any(p.startswith(f"{path}:17: sla_policies.0.first_response:") for p in problems), problems


def test_unknown_references_are_reported_with_their_line(tmp_path):
    path = _write(tmp_path, BROKEN.replace("capacity: 0", "capacity: 3").replace("soon", "4h"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}:6: teams.0.members: unknown agent 'ghost'"]


def test_invalid_yaml_names_the_line(tmp_path):
    path = _write(tmp_path, "teams:\n  - id: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems[0].startswith(f"{path}:3: invalid YAML")


def test_config_check_command(tmp_path):
    runner = CliRunner()
    good = runner.invoke(main, ["config", "check", str(EXAMPLE_CONFIG)])
    assert good.exit_code == 0, good.output
    assert "ok" in good.output
    bad = runner.invoke(main, ["config", "check", str(_write(tmp_path, BROKEN))])
    assert bad.exit_code == 1
    assert "agents.0.capacity" in bad.output
    missing = runner.invoke(main, ["config", "check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1
    assert "cannot read" in missing.output


def test_an_agent_id_that_cannot_travel_in_commands_and_keys_is_refused_with_its_line(tmp_path):
    path = _write(tmp_path, BROKEN.replace("- id: ana", "- id: ana lópez"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(p.startswith(f"{path}:") and "agents.0.id" in p for p in caught.value.problems), caught.value.problems
