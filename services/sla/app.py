"""The SLA service: starts clocks on new tickets and announces warnings and breaches on time."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from faststream.asgi import AsgiFastStream

from services.sla.deadlines import announcement, first_response_deadline, first_response_met, timers_for
from services.sla.timers import TimerStore
from shared.broker import is_infrastructure_outage
from shared.events import MessageAdded, TicketCreated, TicketEvent
from shared.publishing import publish_keyed
from shared.read_model import ReadModel
from shared.service import ConsumerService
from shared.settings import Settings
from shared.topics import TICKETS

logger = logging.getLogger(__name__)

GROUP_ID = "switchboard-sla"
# The longest the firing loop sleeps, so timers scheduled by another instance are seen promptly.
MAX_IDLE_SECONDS = 0.5


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    service = ConsumerService("sla", GROUP_ID, settings)
    config = service.config
    timers = TimerStore(service.redis)
    read_model = ReadModel(service.redis)
    tickets_topic = service.topics.name(TICKETS)

    async def emit(event: TicketEvent) -> None:
        await publish_keyed(service.broker, tickets_topic, [event])
        await read_model.apply([event])

    @service.subscriber(TICKETS)
    async def run_clocks(event: TicketEvent) -> None:
        match event:
            case TicketCreated():
                policy = config.sla_policy(config.team(event.team).sla_policy)
                deadline = first_response_deadline(event, policy)
                await timers.schedule(timers_for(deadline, policy))
                await emit(deadline)
            case MessageAdded(author="agent"):
                ticket = await read_model.ticket_fields(event.ticket_id)
                if ticket.get("first_response_sla") == "met":
                    return
                await timers.cancel(event.ticket_id, "first_response")
                due = ticket.get("first_response_due")
                await emit(first_response_met(event, datetime.fromisoformat(due) if due else None))

    async def fire_due_timers() -> None:
        while True:
            try:
                for timer in await timers.claim_due(time.time()):
                    ticket = await read_model.ticket_fields(timer.ticket_id)
                    # A reply may land between claiming and firing: a met clock announces nothing.
                    if ticket.get(f"{timer.metric}_sla") != "met":
                        await emit(announcement(timer, datetime.now(UTC)))
                    await timers.finished(timer)
                    logger.info("sla announced", extra={"ticket_id": timer.ticket_id, "kind": timer.kind})
                next_fire = await timers.next_fire_time()
            except Exception as error:
                # Claimed timers stay leased and fire again after the lease, once the cause is gone.
                if is_infrastructure_outage(error):
                    logger.warning("sla timers unavailable, retrying", extra={"error": repr(error)})
                else:
                    logger.exception("sla timer round failed")
                next_fire = None
            idle = MAX_IDLE_SECONDS if next_fire is None else next_fire - time.time()
            await asyncio.sleep(min(max(idle, 0.0), MAX_IDLE_SECONDS))

    return service.app(background=fire_due_timers)
