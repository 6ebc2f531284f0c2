"""The SLA service: starts clocks on new tickets and announces warnings and breaches on time."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from faststream import FastStream

from services.sla.deadlines import announcement, first_response_deadline, timers_for
from services.sla.timers import TimerStore
from shared.broker import INFRASTRUCTURE_ERRORS, SUBSCRIBER_DEFAULTS, ConsumerPolicy, make_broker
from shared.config import load_config
from shared.events import TicketCreated, TicketEvent
from shared.publishing import publish_keyed
from shared.read_model import ReadModel
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.topics import TICKETS, Topics, ensure_topics

logger = logging.getLogger(__name__)

GROUP_ID = "switchboard-sla"
# The longest the firing loop sleeps, so timers scheduled by another instance are seen promptly.
MAX_IDLE_SECONDS = 0.5


def create_app(settings: Settings | None = None) -> FastStream:
    settings = settings or Settings()
    config = load_config(settings.config)
    bootstrap, redis_url = settings.require_infra()
    topics = Topics(settings.topic_prefix)
    broker = make_broker(bootstrap, client_id="sla", policy=ConsumerPolicy(topics, group_id=GROUP_ID))
    redis = connect_redis(redis_url)
    timers = TimerStore(redis)
    read_model = ReadModel(redis)
    tickets_topic = topics.name(TICKETS)

    @broker.subscriber(tickets_topic, group_id=GROUP_ID, **SUBSCRIBER_DEFAULTS)
    async def start_clocks(event: TicketEvent) -> None:
        if not isinstance(event, TicketCreated):
            return
        policy = config.sla_policy(config.team(event.team).sla_policy)
        deadline = first_response_deadline(event, policy)
        await timers.schedule(timers_for(deadline, policy))
        await publish_keyed(broker, tickets_topic, [deadline])
        await read_model.apply([deadline])

    async def fire_due_timers() -> None:
        while True:
            try:
                for timer in await timers.claim_due(time.time()):
                    event = announcement(timer, datetime.now(UTC))
                    await publish_keyed(broker, tickets_topic, [event])
                    await read_model.apply([event])
                    await timers.finished(timer)
                    logger.info("sla announced", extra={"ticket_id": timer.ticket_id, "kind": timer.kind})
                next_fire = await timers.next_fire_time()
            except INFRASTRUCTURE_ERRORS as error:
                # Claimed timers stay leased and fire again once Redis and Kafka are back.
                logger.warning("sla timers unavailable, retrying", extra={"error": repr(error)})
                next_fire = None
            except Exception:
                logger.exception("sla timer round failed; leased timers fire again after the lease")
                next_fire = None
            idle = MAX_IDLE_SECONDS if next_fire is None else next_fire - time.time()
            await asyncio.sleep(min(max(idle, 0.0), MAX_IDLE_SECONDS))

    app = FastStream(broker, logger=logger)
    firing: list[asyncio.Task[None]] = []

    @app.on_startup
    async def create_topics() -> None:
        await ensure_topics(bootstrap, topics)

    @app.after_startup
    async def start_firing() -> None:
        firing.append(asyncio.create_task(fire_due_timers(), name="sla-timers"))

    @app.on_shutdown
    async def stop_firing() -> None:
        for task in firing:
            task.cancel()
        await asyncio.gather(*firing, return_exceptions=True)

    @app.after_shutdown
    async def close_redis() -> None:
        await redis.aclose()

    return app
