"""`switchboard up` as a user runs it: its own Kafka and Redis, every service, then Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from click.testing import CliRunner

from switchboard.cli import main
from tests.conftest import free_port
from tests.support import wait_for_ticket

pytestmark = pytest.mark.e2e

STARTUP_TIMEOUT = 180  # the first run on a cold CI machine downloads the broker's jars


class RunningStack:
    def __init__(self, process: subprocess.Popen, data_dir: Path, base_url: str):
        self.process = process
        self.data_dir = data_dir
        self.base_url = base_url
        self.output: list[str] = []
        self.up = threading.Event()
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def _read_output(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("Switchboard is up."):
                self.up.set()

    def wait_until_up(self) -> None:
        if not self.up.wait(STARTUP_TIMEOUT):
            raise AssertionError(f"switchboard up did not come up:\n{''.join(self.output)}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=90)
        self._reader.join(timeout=10)
        return code


@pytest.fixture
def stack(tmp_path: Path, fake_slack) -> Iterator[RunningStack]:
    data_dir = tmp_path / "data"
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_DATA_DIR": str(data_dir),
            "SWITCHBOARD_HTTP_PORT": str(port),
            "SWITCHBOARD_SMTP_PORT": str(free_port()),
            "SWITCHBOARD_SLACK_BOT_TOKEN": "xoxb-test",
            "SWITCHBOARD_SLACK_API_URL": fake_slack.base_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    # Reuse the jars CI or an earlier run already fetched, as a user's second run would.
    shared_jars = Path(os.environ.get("SWITCHBOARD_TEST_JARS", Path.home() / ".local/share/switchboard/kafka-libs"))
    if shared_jars.is_dir():
        data_dir.mkdir(parents=True)
        (data_dir / "kafka-libs").symlink_to(shared_jars)
    process = subprocess.Popen(
        [sys.executable, "-m", "switchboard", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = RunningStack(process, data_dir, f"http://127.0.0.1:{port}")
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_up_serves_a_form_to_slack_and_ctrl_c_leaves_nothing_behind(stack: RunningStack, fake_slack, monkeypatch):
    stack.wait_until_up()
    token = (stack.data_dir / "api-token").read_text().strip()
    assert token in "".join(stack.output), "the read API token is printed with the endpoints"

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

    assert stack.interrupt() == 0, "".join(stack.output)
    survivors = [pid for pid in family_pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert survivors == [], f"left behind: {survivors}"
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(stack.data_dir))
    status = CliRunner().invoke(main, ["infra", "status"])
    assert status.output.strip() == "stopped"
