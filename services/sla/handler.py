"""The SLA service's batch handler and its timer firing loop.

Per batch of ticket events: read the clocks the batch touches in one pipeline, decide in pure code
(services.sla.decide), hand the deadline/met events to the engine, and once they are on Kafka
write the timers and the read model in one pipeline. Every event is derived deterministically
from the event that caused it, so a redelivered batch publishes the very same events again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from services.sla.deadlines import announcement
from services.sla.decide import ClockView, FirstResponseClock, decide
from services.sla.timers import TimerStore
from shared.config import DeskConfig
from shared.engine import BatchResult, Record, is_infrastructure_outage
from shared.events import MessageAdded, TicketCreated, TicketEvent
from shared.publisher import Outgoing, Publisher
from shared.read_model import ReadModel, ticket_key
from shared.topics import TICKETS, Topics

logger = logging.getLogger(__name__)

# The longest the firing loop sleeps, so timers scheduled by another instance are seen promptly.
MAX_IDLE_SECONDS = 0.5


class SlaHandler:
    def __init__(self, config: DeskConfig, timers: TimerStore, read_model: ReadModel, topics: Topics):
        self.config = config
        self.timers = timers
        self.read_model = read_model
        self.tickets_topic = topics.name(TICKETS)

    async def handle(self, records: list[Record[TicketEvent]]) -> BatchResult:
        relevant = [
            record.value
            for record in records
            if isinstance(record.value, TicketCreated)
            or (isinstance(record.value, MessageAdded) and record.value.author == "agent")
        ]
        if not relevant:
            return BatchResult()
        decision = decide(relevant, await self._clocks(relevant), self.config)

        async def write() -> None:
            async with self.read_model.redis.pipeline(transaction=False) as pipe:
                await self.timers.write(pipe, decision.schedule, decision.cancel)
                await pipe.execute()
            await self.read_model.apply(decision.events)

        return BatchResult(
            publish=[Outgoing.event(self.tickets_topic, event.ticket_id, event) for event in decision.events],
            after_publish=write,
        )

    async def _clocks(self, events: list[TicketEvent]) -> ClockView:
        tickets = list(dict.fromkeys(event.ticket_id for event in events))
        async with self.read_model.redis.pipeline(transaction=False) as pipe:
            for ticket_id in tickets:
                pipe.hmget(ticket_key(ticket_id), "first_response_sla", "first_response_due")
            rows = await pipe.execute()
        return ClockView(
            first_response={
                ticket_id: FirstResponseClock(status, datetime.fromisoformat(due) if due else None)
                for ticket_id, (status, due) in zip(tickets, rows, strict=True)
                if status is not None
            }
        )


class TimerFiring:
    """Announces due warnings and breaches, a batch of due timers at a time, each once across instances."""

    def __init__(self, timers: TimerStore, read_model: ReadModel, publisher: Publisher, topics: Topics):
        self.timers = timers
        self.read_model = read_model
        self.publisher = publisher
        self.tickets_topic = topics.name(TICKETS)

    async def run(self) -> None:
        while True:
            try:
                await self.fire_due(time.time())
                next_fire = await self.timers.next_fire_time()
            except Exception as error:
                # Claimed timers stay leased and fire again after the lease, once the cause is gone.
                if is_infrastructure_outage(error):
                    logger.warning("sla timers unavailable, retrying", extra={"error": repr(error)})
                else:
                    logger.exception("sla timer round failed")
                next_fire = None
            idle = MAX_IDLE_SECONDS if next_fire is None else next_fire - time.time()
            await asyncio.sleep(min(max(idle, 0.0), MAX_IDLE_SECONDS))

    async def fire_due(self, now: float) -> int:
        due = await self.timers.claim_due(now)
        if not due:
            return 0
        async with self.read_model.redis.pipeline(transaction=False) as pipe:
            for timer in due:
                pipe.hget(ticket_key(timer.ticket_id), f"{timer.metric}_sla")
            statuses = await pipe.execute()
        at = datetime.now(UTC)
        # A reply may land between claiming and firing: a met clock announces nothing.
        events = [announcement(timer, at) for timer, status in zip(due, statuses, strict=True) if status != "met"]
        await self.publisher.publish_many(
            [Outgoing.event(self.tickets_topic, event.ticket_id, event) for event in events], timeout=30
        )
        await self.read_model.apply(events)
        await self.timers.finished(due)
        for event in events:
            logger.info("sla announced", extra={"ticket_id": event.ticket_id, "kind": event.type})
        return len(events)
