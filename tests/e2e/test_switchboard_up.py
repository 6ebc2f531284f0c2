"""`switchboard up` as a user runs it: its own Kafka and Redis, every service, then Ctrl-C."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from click.testing import CliRunner

from switchboard.cli import main
from tests.e2e.running_stack import RunningStack, up_env
from tests.support import wait_for_ticket

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path, fake_slack) -> Iterator[RunningStack]:
    env = up_env(
        tmp_path / "data", SWITCHBOARD_SLACK_BOT_TOKEN="xoxb-test", SWITCHBOARD_SLACK_API_URL=fake_slack.base_url
    )
    running = RunningStack(env)
    try:
        yield running
    finally:
        running.kill()


def test_up_serves_a_form_to_slack_and_ctrl_c_leaves_nothing_behind(stack: RunningStack, fake_slack, monkeypatch):
    stack.wait_until_up()
    token = (stack.data_dir / "api-token").read_text().strip()
    assert token in "\n".join(stack.output), "the read API token is printed with the endpoints"

    response = httpx.post(
        f"{stack.base_url}/v1/forms/contact",
        json={"name": "Ana", "email": "ana@example.com", "subject": "Cannot log in", "message": "..."},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    ticket_id = response.json()["ticket_id"]

    [post] = fake_slack.wait_for_calls_sync(
        "chat.postMessage",
        timeout=30,
        predicate=lambda c: c.args["channel"] == "C0SUPPORT" and ticket_id in c.args["text"],
    )
    assert "<@U0" in post.args["text"]
    ticket = wait_for_ticket(
        stack.base_url, ticket_id, token, lambda t: t["assignee"] and t["sla"]["first_response_due"]
    )
    assert ticket["contact"]["emails"] == ["ana@example.com"]

    infra = json.loads((stack.data_dir / "infra.json").read_text())
    family = psutil.Process(stack.process.pid).children(recursive=True)
    family_pids = {child.pid for child in family} | {infra["kafka_pid"], infra["redis_pid"]}
    assert len(family_pids) >= 6, "Kafka, Redis and four services"

    assert stack.interrupt() == 0, "\n".join(stack.output)
    survivors = [pid for pid in family_pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert survivors == [], f"left behind: {survivors}"
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(stack.data_dir))
    status = CliRunner().invoke(main, ["infra", "status"])
    assert status.output.strip() == "stopped"
