"""The SLA service process: starts clocks on new tickets, announces warnings and breaches on time, asks the
router to close tickets that stayed solved for `close_after`, and posts the daily report digest to Slack
(config `reports.digest`, services/reports/digest.py): the service that already runs durable timers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from slack_sdk.web.async_client import AsyncWebClient

from services.reports.digest import DigestRunner
from services.sla.handler import SlaHandler, TimerFiring
from services.sla.timers import TimerStore
from shared.process import ServiceProcess
from shared.read_model import ReadModel
from shared.settings import Settings
from shared.tasks import running
from shared.topics import COMMANDS, REPORTS, TICKETS, Subscription

logger = logging.getLogger(__name__)

SUBSCRIPTION = Subscription("sla", "switchboard-sla", consumes=(TICKETS,), publishes=(TICKETS, COMMANDS, REPORTS))


def create_app(settings: Settings | None = None) -> FastAPI:
    process = ServiceProcess("sla", settings)
    timers, read_model = TimerStore(process.redis), ReadModel(process.redis)
    process.consume(
        SUBSCRIPTION.group_id, SUBSCRIPTION.consumes, SlaHandler(process.config, timers, read_model, process.topics)
    )
    firing = TimerFiring(timers, read_model, process.publisher, process.topics, process.config)
    digests = _digest_runner(process)

    @asynccontextmanager
    async def fire_timers() -> AsyncIterator[None]:
        # Before the consumer starts: the clocks kept under an earlier config follow this one.
        await firing.reconcile(datetime.now(UTC))
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(running(firing.run(), name="sla-timers"))
            if digests is not None:
                await stack.enter_async_context(running(digests.run(), name="report-digest"))
            yield

    return process.app(while_running=fire_timers)


def _digest_runner(process: ServiceProcess) -> DigestRunner | None:
    digest, token = process.config.reports.digest, process.settings.slack_bot_token
    if digest is None:
        return None
    if token is None:
        logger.warning("reports.digest is configured but SWITCHBOARD_SLACK_BOT_TOKEN is not set: no digest is posted")
        return None
    slack = AsyncWebClient(token=token.get_secret_value(), base_url=process.settings.slack_api_url)
    return DigestRunner(
        digest, process.config, process.bootstrap, process.topics, process.redis, process.publisher, slack
    )
