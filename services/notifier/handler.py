"""The notifier's batch handler: plans each ticket event's deliveries and hands them to the scheduler.

The engine commits a batch only once all its deliveries are made, failed or skipped, while later
batches go on; the `notification.sent` records are published then, and failed deliveries send
their cause to the DLQ with the reason.
"""

from __future__ import annotations

import asyncio
import logging

from services.notifier.deliveries import DeliveryScheduler, Failed, Outcome
from services.notifier.ledger import Ledger
from services.notifier.plan import Delivery, NotifierView, TicketContext, plan
from shared.config import DeskConfig
from shared.engine import BatchResult, Record
from shared.events import MessageAdded, NotificationSent, TicketCreated, TicketEvent
from shared.identities import normalise_email
from shared.publisher import Outgoing
from shared.topics import TICKETS, Topics

logger = logging.getLogger(__name__)


class NotifierHandler:
    def __init__(self, config: DeskConfig, ledger: Ledger, scheduler: DeliveryScheduler, topics: Topics):
        self.config = config
        self.ledger = ledger
        self.scheduler = scheduler
        self.tickets_topic = topics.name(TICKETS)

    async def handle(self, records: list[Record[TicketEvent]]) -> BatchResult:
        events = [record.value for record in records if not isinstance(record.value, NotificationSent)]
        if not events:
            return BatchResult()
        view = await self._view(events)
        planned: list[tuple[Record[TicketEvent], Delivery]] = [
            (record, delivery)
            for record in records
            if not isinstance(record.value, NotificationSent)
            for delivery in plan(record.value, view, self.config)
            if self.scheduler.deliverable(delivery)
        ]
        planned = await self._within_acknowledgement_limits(planned)
        if not planned:
            return BatchResult()
        tasks = self.scheduler.submit([delivery for _, delivery in planned])
        return BatchResult(pending=asyncio.ensure_future(self._settled(planned, tasks)))

    async def _settled(
        self, planned: list[tuple[Record[TicketEvent], Delivery]], tasks: list[asyncio.Task[Outcome]]
    ) -> BatchResult:
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        result = BatchResult()
        for (record, delivery), outcome in zip(planned, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # A bug, not the outside world: the engine stops rather than dead-letter every event.
                raise outcome
            if isinstance(outcome, NotificationSent):
                result.publish.append(Outgoing.event(self.tickets_topic, outcome.ticket_id, outcome))
                continue
            if delivery.purpose == "acknowledgement":
                await self.ledger.release_acknowledgement(delivery.target)
            if isinstance(outcome, Failed):
                result.rejected.append((record, f"{delivery.purpose} to {delivery.target}: {outcome.reason}"))
        return result

    async def _within_acknowledgement_limits(
        self, planned: list[tuple[Record[TicketEvent], Delivery]]
    ) -> list[tuple[Record[TicketEvent], Delivery]]:
        """Acknowledgements beyond the hourly limit per contact are not sent (a loop breaker)."""
        acknowledgements = [delivery for _, delivery in planned if delivery.purpose == "acknowledgement"]
        if not acknowledgements:
            return planned
        allowed = await self.ledger.reserve_acknowledgements(
            [(delivery.key, delivery.target) for delivery in acknowledgements],
            self.config.acknowledgements.per_hour,
        )
        refused = {delivery.key for delivery, ok in zip(acknowledgements, allowed, strict=True) if not ok}
        for key in refused:
            logger.info("acknowledgement skipped: hourly limit reached", extra={"key": key})
        return [(record, delivery) for record, delivery in planned if delivery.key not in refused]

    async def _view(self, events: list[TicketEvent]) -> NotifierView:
        tickets = list(dict.fromkeys(event.ticket_id for event in events))
        routes = [event.reply_route for event in events if isinstance(event, TicketCreated) and event.reply_route]
        routes += [
            event.reply_route
            for event in events
            if isinstance(event, MessageAdded) and event.author == "agent" and event.reply_route
        ]
        emails = list(dict.fromkeys(normalise_email(route.address) for route in routes if route.channel == "email"))
        rows, bounced = await self.ledger.context(tickets, emails)
        return NotifierView(
            tickets={ticket_id: TicketContext(*row) for ticket_id, row in zip(tickets, rows, strict=True)},
            undeliverable=bounced,
        )
