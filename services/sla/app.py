"""The SLA service process: starts clocks on new tickets, announces warnings and breaches on time, and
asks the router to close tickets that stayed solved for `close_after`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from services.sla.handler import SlaHandler, TimerFiring
from services.sla.timers import TimerStore
from shared.process import ServiceProcess
from shared.read_model import ReadModel
from shared.settings import Settings
from shared.tasks import running
from shared.topics import COMMANDS, TICKETS, Subscription

SUBSCRIPTION = Subscription("sla", "switchboard-sla", consumes=(TICKETS,), publishes=(TICKETS, COMMANDS))


def create_app(settings: Settings | None = None) -> FastAPI:
    process = ServiceProcess("sla", settings)
    timers, read_model = TimerStore(process.redis), ReadModel(process.redis)
    process.consume(
        SUBSCRIPTION.group_id, SUBSCRIPTION.consumes, SlaHandler(process.config, timers, read_model, process.topics)
    )
    firing = TimerFiring(timers, read_model, process.publisher, process.topics, process.config)

    @asynccontextmanager
    async def fire_timers() -> AsyncIterator[None]:
        # Before the consumer starts: the clocks kept under an earlier config follow this one.
        await firing.reconcile(datetime.now(UTC))
        async with running(firing.run(), name="sla-timers"):
            yield

    return process.app(while_running=fire_timers)
