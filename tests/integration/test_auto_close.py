"""Auto-close on the real broker and Redis, the SLA service a real process (issue #10, item 1).

A ticket solved (a `ticket.status_changed` to solved on the tickets topic) makes the SLA service
ask the router to close it `close_after` later: one `command.set_status` (closed, by "system") on
the commands topic. A reopen before then asks nothing; an SLA restarted in between still asks.
`switchboard replay` rebuilds the pending auto-close timers and the agents' availability key by key.

The router's part (applying the command, projecting the status) is not under test here: the test
publishes the status changes the router would and applies them to the read model as it does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from aiokafka import AIOKafkaProducer

from services.intake.ticket_ids import sequence_key
from shared.events import StatusChanged
from shared.ids import derived_id
from shared.read_model import ReadModel
from shared.redis_client import connect_redis
from shared.settings import EXAMPLE_CONFIG, Settings
from shared.topics import COMMANDS, TICKETS, Topics, ensure_topics
from tests.conftest import free_port
from tests.integration.lost_redis import assert_same_projections, availability_change, events_on, projections
from tests.support import ServiceProcesses, eventually, switchboard_cli, wait_until_consumed

pytestmark = pytest.mark.integration

SLA_GROUP = "switchboard-sla"


def config_closing_after(directory: Path, close_after: str) -> Path:
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["close_after"] = close_after
    path = directory / f"close-after-{close_after}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def status_change(ticket_id: str, to: str, *, came_from: str = "open", resolution: int = 1) -> StatusChanged:
    return StatusChanged(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        ticket_id=ticket_id,
        from_status=came_from,
        to_status=to,
        actor="ana",
        reason="answered" if to == "solved" else "customer replied",
        team="support",
        assignee_id="ana",
        resolution=resolution,
    )


class Log:
    """Publishes status changes on the test's tickets topic and projects them, as the router does."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)

    async def publish(self, *changes: StatusChanged) -> None:
        await ensure_topics(self.settings.kafka_bootstrap, self.topics)
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap)
        await producer.start()
        try:
            for change in changes:
                value, key = change.model_dump_json().encode(), change.ticket_id.encode()
                await producer.send_and_wait(self.topics.name(TICKETS), value, key=key)
        finally:
            await producer.stop()
        store = connect_redis(self.settings.redis_url)
        try:
            await ReadModel(store).apply(changes)
        finally:
            await store.aclose()

    async def handled(self) -> None:
        """Waits until the SLA service has handled every ticket event published so far."""
        await wait_until_consumed(
            self.settings.kafka_bootstrap, self.topics.group(SLA_GROUP), self.topics.name(TICKETS), timeout=60
        )

    async def commands_once(self, ticket_id: str, timeout: float = 60) -> list[dict]:
        """Every command on the commands topic, once one for `ticket_id` is among them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            commands = await events_on(self.settings, COMMANDS)
            if any(command["ticket_id"] == ticket_id for command in commands):
                return commands
            await asyncio.sleep(0.2)
        raise AssertionError(f"no command for {ticket_id} in {timeout}s")


def auto_close_timers(settings: Settings) -> list[str]:
    store = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    timers = store.zrange("sb:sla:timers", 0, -1) + store.zrange("sb:sla:claimed", 0, -1)
    return [timer for timer in timers if "auto_close" in timer]


def start_sla(services: ServiceProcesses, instance: str | None = None) -> None:
    """Starts the SLA service and waits until it is ready (it consumes the tickets topic)."""
    port = free_port()
    services.start("sla", instance=instance, SWITCHBOARD_OPS_PORT=str(port))
    eventually(lambda: _ready(f"http://127.0.0.1:{port}"), "the SLA service is ready")


def _ready(ops: str) -> bool:
    try:
        return httpx.get(f"{ops}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def quick(settings: Settings, tmp_path: Path) -> Settings:
    """This test's settings with a config whose solved tickets close after two seconds."""
    return settings.model_copy(update={"config": config_closing_after(tmp_path, "2s")})


async def test_a_solved_ticket_is_closed_once_after_close_after_and_a_reopened_one_is_not(
    quick: Settings, tmp_path: Path
):
    services = ServiceProcesses(quick, tmp_path / "logs")
    log = Log(quick)
    try:
        start_sla(services)
        await log.publish(status_change("SB-1001", "solved"), status_change("SB-1002", "solved"))
        await log.handled()
        # Reopened in a later batch, once its timer is stored.
        await log.publish(status_change("SB-1002", "open", came_from="solved"))
        await log.handled()
        # Solved last: due after the others (in a later round of the timers), so once its command is
        # there, theirs would be too.
        await log.publish(status_change("SB-1003", "solved", resolution=2))

        commands = await log.commands_once("SB-1003")
        assert sorted(c["ticket_id"] for c in commands) == ["SB-1001", "SB-1003"]
        first = next(c for c in commands if c["ticket_id"] == "SB-1001")
        assert first["type"] == "command.set_status"
        assert (first["status"], first["agent_id"]) == ("closed", "system")
        assert first["reason"] == "closed automatically 2 seconds after it was solved"
        assert first["event_id"] == str(derived_id("SB-1001", "auto_close", 1))
        eventually(lambda: auto_close_timers(quick) == [], "no auto-close timer is left")
    finally:
        services.stop_all()


async def test_an_sla_restarted_before_the_timer_is_due_still_closes_the_ticket_once(
    settings: Settings, tmp_path: Path
):
    later = settings.model_copy(update={"config": config_closing_after(tmp_path, "8s")})
    services = ServiceProcesses(later, tmp_path / "logs")
    log = Log(later)
    try:
        start_sla(services)
        # Once the service handles events, the solve: it is due well after the service is killed.
        await log.publish(status_change("SB-1000", "open", came_from="new"))
        await log.handled()
        await log.publish(status_change("SB-1001", "solved"))
        await log.handled()
        services.kill("sla")
        [waiting] = auto_close_timers(later)
        assert '"ticket_id": "SB-1001"' in waiting

        start_sla(services, instance="sla-again")
        [command] = await log.commands_once("SB-1001")
        assert command["status"] == "closed"
        assert command["event_id"] == str(derived_id("SB-1001", "auto_close", 1))
        eventually(lambda: auto_close_timers(later) == [], "no auto-close timer is left")
    finally:
        services.stop_all()


async def test_replay_rebuilds_pending_auto_closes_and_availability_key_by_key(settings: Settings, tmp_path: Path):
    hourly = settings.model_copy(update={"config": config_closing_after(tmp_path, "1h")})
    services = ServiceProcesses(hourly, tmp_path / "logs")
    log = Log(hourly)
    try:
        start_sla(services)
        await log.publish(
            status_change("SB-1001", "solved"),
            status_change("SB-1002", "solved"),
            status_change("SB-1002", "open", came_from="solved"),
        )
        await availability_change(hourly, "ben", available=False)
        await availability_change(hourly, "ana", available=True)
        await log.handled()
    finally:
        services.stop_all()
    before = projections(hourly.redis_url)
    [pending] = auto_close_timers(hourly)  # SB-1002's was stopped by its reopen
    assert '"ticket_id": "SB-1001"' in pending and before["sb:agent:ben"][1]["available"] == "0"

    redis.Redis.from_url(hourly.redis_url).flushdb()
    result = switchboard_cli(hourly, "replay")

    assert result.returncode == 0, result.stderr
    assert "agent availability changes" in result.stdout and "replayed 2 agent availability changes" in result.stdout
    after = projections(hourly.redis_url)
    # The ticket counter is restored from the IDs in the log; intake did not mint these.
    assert after.pop(sequence_key("SB")) == ("string", "2")
    assert_same_projections(before, after)
