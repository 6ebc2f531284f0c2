"""`switchboard report` on a scripted week of tickets on the real broker: the week is played through the public
interface (forms and Telegram messages to intake-http, the CLI's commands) with intake, the router and the SLA
service in this process under a fixed clock (time-machine), so that every event carries a known time; the
report prints figures equal to values computed by hand, and the same after `switchboard replay` on an empty
Redis (the report reads Kafka alone)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
import time_machine
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError
from pydantic import SecretStr

from services.intake.http import create_app as intake_app
from services.intake.telegram import SECRET_HEADER
from services.router.app import create_app as router_app
from services.sla.app import create_app as sla_app
from services.sla.timers import CLAIMED_KEY, SCHEDULED_KEY
from shared.events import RateTicket, SetPriority, SetStatus
from shared.log_reader import TopicLog
from shared.settings import Settings
from shared.topics import COMMANDS, INBOUND, TICKETS, Topics
from switchboard.commands import send_command, send_reply
from tests.conftest import TELEGRAM_SECRET, TELEGRAM_TOKEN
from tests.fakes.telegram_api import FakeTelegramApi
from tests.support import in_process_client, switchboard_cli, topic_size, wait_until_consumed

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "reports" / "config.yaml"
WEEK = ("--since", "2026-11-23", "--until", "2026-11-30")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant of the scripted week: Monday 23 November 2026 is day 23."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def desk(settings: Settings, fake_telegram: FakeTelegramApi) -> Settings:
    return settings.model_copy(
        update={
            "config": CONFIG,
            "telegram_bot_token": SecretStr(TELEGRAM_TOKEN),
            "telegram_webhook_secret": SecretStr(TELEGRAM_SECRET),
            "telegram_api_url": fake_telegram.base_url,
        }
    )


class Week:
    """The stack in this process under a clock that moves only when told to."""

    def __init__(
        self, settings: Settings, intake: httpx.AsyncClient, clock: time_machine.Coordinates, services: AsyncExitStack
    ):
        self.settings = settings
        self.services = services
        self.intake = intake
        self.clock = clock
        self.topics = Topics(settings.topic_prefix)
        self.redis = redis.Redis.from_url(settings.redis_url)

    async def move_to(self, when: datetime) -> None:
        """Moves the clock, then lets the SLA service announce what fell due by then (breaches fire at `when`)."""
        self.clock.move_to(when)
        await self.settle()

    async def settle(self) -> None:
        """Waits until the router and the SLA service consumed everything and no SLA timer is due."""
        bootstrap = self.settings.kafka_bootstrap
        consumed = (("switchboard-router", INBOUND), ("switchboard-router", COMMANDS), ("switchboard-sla", TICKETS))
        for _ in range(2):
            while self.redis.zcount(SCHEDULED_KEY, "-inf", datetime.now(UTC).timestamp()) or self.redis.zcard(
                CLAIMED_KEY
            ):
                await asyncio.sleep(0.05)
            for group, spec in consumed:
                if await topic_size(bootstrap, self.topics.name(spec)):
                    await _consumed(bootstrap, self.topics.group(group), self.topics.name(spec))

    async def form(self, when: datetime, form: str, subject: str) -> str:
        await self.move_to(when)
        body = {"name": "Customer", "email": f"{subject.split()[0].lower()}@example.com", "subject": subject,
                "message": f"{subject}, please help."}  # fmt: skip
        response = await self.intake.post(f"/v1/forms/{form}", json=body)
        assert response.status_code in (200, 201, 202), response.text
        await self.settle()
        return response.json()["ticket_id"]

    async def telegram(self, when: datetime, chat: int, update: int, text: str) -> None:
        await self.move_to(when)
        sender = {"id": chat, "is_bot": False, "first_name": f"Chat{chat}"}
        message = {"message_id": update, "from": sender, "chat": {"id": chat, "type": "private"},
                   "date": int(when.timestamp()), "text": text}  # fmt: skip
        response = await self.intake.post(
            "/v1/telegram/webhook",
            json={"update_id": update, "message": message},
            headers={SECRET_HEADER: TELEGRAM_SECRET},
        )
        assert response.status_code == 200, response.text
        await self.settle()

    async def command(self, when: datetime, kind: type, ticket_id: str, agent: str, **fields) -> None:
        await self.move_to(when)
        await send_command(self.settings, kind, ticket_id, agent, **fields)
        await self.settle()

    async def reply(self, when: datetime, ticket_id: str, agent: str) -> None:
        await self.move_to(when)
        await send_reply(self.settings, ticket_id, "Here is what to do.", agent)
        await self.settle()

    async def events(self) -> list[dict]:
        async with TopicLog(self.settings.kafka_bootstrap, self.topics.name(TICKETS)) as log:
            return [json.loads(record.value) async for record in log]

    async def newest_ticket(self) -> str:
        created = [event for event in await self.events() if event["type"] == "ticket.created"]
        return max(created, key=lambda event: event["occurred_at"])["ticket_id"]


async def _consumed(bootstrap: str, group: str, topic: str) -> None:
    # A group's coordinator may still be loading on a busy broker: asked again, as a consumer would.
    for _ in range(100):
        try:
            return await wait_until_consumed(bootstrap, group, topic)
        except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
            await asyncio.sleep(0.2)
    raise AssertionError(f"no coordinator for {group}")


@pytest.fixture
async def week(desk: Settings) -> AsyncIterator[Week]:
    with time_machine.travel(at(22, 12), tick=False) as clock:
        stack = AsyncExitStack()
        try:
            intake = await stack.enter_async_context(in_process_client(intake_app(desk)))
            await stack.enter_async_context(in_process_client(router_app(desk)))
            await stack.enter_async_context(in_process_client(sla_app(desk)))
            yield Week(desk, intake, clock, stack)
        finally:
            await stack.aclose()


async def play_the_week(week: Week) -> dict[str, str]:
    """The scripted week (all times UTC; the office calendar is open Mon–Fri 09:00–17:00); returns ticket IDs."""
    t1 = await week.form(at(23, 9), "contact", "Login fails")
    await week.reply(at(23, 10), t1, "ana")
    await week.command(at(23, 15), SetStatus, t1, "ana", status="solved")
    await week.telegram(at(23, 16), 501, 1, "My order has not arrived")
    t2 = await week.newest_ticket()
    await week.command(at(23, 16, 30), RateTicket, t1, "customer", resolution=1, score=5)
    t3 = await week.form(at(24, 9), "billing", "Refund please")
    await week.command(at(24, 9, 30), SetPriority, t3, "chloe", priority="urgent")
    await week.reply(at(24, 9, 50), t3, "chloe")
    await week.reply(at(24, 10), t2, "ben")
    await week.telegram(at(24, 11), 501, 2, "It still has not arrived")
    await week.reply(at(24, 13), t2, "ben")
    await week.command(at(24, 20), SetStatus, t3, "chloe", status="solved")
    t4 = await week.form(at(25, 9), "contact", "Export broken")
    await week.command(at(25, 12), SetStatus, t2, "ben", status="solved")
    await week.command(at(25, 13), RateTicket, t2, "customer", resolution=1, score=2)
    await week.command(at(26, 10), SetStatus, t4, "admin", status="pending")
    t5 = await week.form(at(26, 14), "contact", "Password reset")
    await week.command(at(26, 14, 30), SetStatus, t5, "admin", status="solved", reason="deflected")
    await week.telegram(at(28, 10), 502, 3, "Can I change my address?")
    t6 = await week.newest_ticket()
    await week.reply(at(28, 12), t6, "ana")
    await week.command(at(28, 13), SetStatus, t6, "ana", status="solved")
    return {"t1": t1, "t2": t2, "t3": t3, "t4": t4, "t5": t5, "t6": t6}


H = 3600
# Computed by hand from the script. First responses: T1 1h (business 1h), T2 Mon 16:00 → Tue 10:00 = 18h
# (business: Mon 16–17 + Tue 9–10 = 2h), T3 50m on the urgent policy's calendar time, T6 2h on a Saturday
# (business 0). Next response: T2 Tue 11:00 → 13:00. Resolutions: T1 6h, T2 Mon 16:00 → Wed 12:00 = 44h
# (business 1 + 8 + 3 = 12h), T3 11h (calendar time), T6 3h (business 0); T5 was deflected.
EXPECTED_TIMES = {
    "first_response": {
        "calendar": {"count": 4, "median": (H + 2 * H) / 2, "p90": 18 * H},
        "business": {"count": 4, "median": (3000 + H) / 2, "p90": 2 * H},
    },
    "next_response": {
        "calendar": {"count": 1, "median": 2 * H, "p90": 2 * H},
        "business": {"count": 1, "median": 2 * H, "p90": 2 * H},
    },
    "resolution": {
        "calendar": {"count": 4, "median": (6 * H + 11 * H) / 2, "p90": 44 * H},
        "business": {"count": 4, "median": (6 * H + 11 * H) / 2, "p90": 12 * H},
    },
}
# SLA: standard first response met by T1, T2, T6 and breached by T4 (due Wed 13:00); T3's clocks moved to the
# urgent policy, whose resolution (8h, due Tue 17:00) it breached; T5's deflection met its resolution.
EXPECTED_SLA = [
    {"policy": "standard", "metric": "first_response", "met": 3, "due": 4, "compliance": 0.75},
    {"policy": "standard", "metric": "next_response", "met": 1, "due": 1, "compliance": 1.0},
    {"policy": "standard", "metric": "resolution", "met": 4, "due": 4, "compliance": 1.0},
    {"policy": "urgent", "metric": "first_response", "met": 1, "due": 1, "compliance": 1.0},
    {"policy": "urgent", "metric": "resolution", "met": 0, "due": 1, "compliance": 0.0},
]


def _backlog(day: str, status: str | None, age: str | None) -> dict:
    by_status = {"new": 0, "open": 0, "pending": 0, "on_hold": 0}
    by_age = {"<1d": 0, "1-3d": 0, "3-7d": 0, ">=7d": 0}
    if status:
        by_status[status], by_age[age] = 1, 1  # type: ignore[index]
    return {"day": day, "total": int(status is not None), "by_status": by_status, "by_age": by_age}


# At each midnight one ticket waits: T2 (new, then open after Tuesday's reply), T4 (new, then pending).
EXPECTED_BACKLOG = [
    _backlog("2026-11-23", "new", "<1d"),
    _backlog("2026-11-24", "open", "1-3d"),
    _backlog("2026-11-25", "new", "<1d"),
    _backlog("2026-11-26", "pending", "1-3d"),
    _backlog("2026-11-27", "pending", "1-3d"),
    _backlog("2026-11-28", "pending", "3-7d"),
    _backlog("2026-11-29", "pending", "3-7d"),
]
EXPECTED_AGENTS = [
    {"agent": "ana", "solved": 2, "first_responses": 2, "first_response_median": 1.5 * H,
     "resolution_median": 4.5 * H, "csat": {"count": 1, "satisfied": 1, "share": 1.0}},
    {"agent": "ben", "solved": 1, "first_responses": 1, "first_response_median": 18 * H,
     "resolution_median": 44 * H, "csat": {"count": 1, "satisfied": 0, "share": 0.0}},
    {"agent": "chloe", "solved": 1, "first_responses": 1, "first_response_median": 3000.0,
     "resolution_median": 11 * H, "csat": {"count": 0, "satisfied": 0, "share": None}},
]  # fmt: skip


def report_json(settings: Settings, *args: str) -> dict:
    result = switchboard_cli(settings, "report", *WEEK, "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_report_of_a_scripted_week_equals_the_hand_computed_figures_and_survives_replay(week: Week, tmp_path):
    tickets = await play_the_week(week)
    assigned = {e["ticket_id"]: e["agent_id"] for e in await week.events() if e["type"] == "ticket.assigned"}
    assert [assigned[tickets[t]] for t in ("t1", "t2", "t3", "t4", "t5", "t6")] == [
        "ana", "ben", "chloe", "ana", "ben", "ana"
    ]  # fmt: skip

    report = report_json(week.settings)

    assert report["tickets"] == {
        "created": 6,
        "by_channel": {"form": 4, "telegram": 2},
        "by_category": {"general": 6},
        "by_team": {"payments": 1, "support": 5},
    }
    assert report["times"] == EXPECTED_TIMES
    assert report["backlog"] == EXPECTED_BACKLOG
    assert report["sla"] == EXPECTED_SLA
    assert report["csat"] == {"count": 2, "satisfied": 1, "share": 0.5}
    assert report["agents"] == EXPECTED_AGENTS
    assert report["deflections"] == 1
    payments = report_json(week.settings, "--team", "payments")
    assert payments["tickets"]["created"] == 1 and payments["agents"][0]["agent"] == "chloe"

    # The other formats and the chart, from the same figures.
    table = switchboard_cli(week.settings, "report", *WEEK, "--plot", str(tmp_path / "week.png"))
    assert table.returncode == 0, table.stderr
    assert "SLA compliance" in table.stdout and "75%" in table.stdout
    assert (tmp_path / "week.png").read_bytes().startswith(b"\x89PNG")
    rows = switchboard_cli(week.settings, "report", *WEEK, "--format", "csv").stdout.splitlines()
    assert "sla,standard:first_response,compliance,0.75" in rows and "deflections,all,solved,1" in rows

    # The services stopped, Redis lost and rebuilt: the report never read it, so it does not change.
    await week.services.aclose()
    week.redis.flushdb()
    replayed = switchboard_cli(week.settings, "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert report_json(week.settings) == report
