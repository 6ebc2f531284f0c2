"""The notifier's batch handler: plans each ticket event's deliveries and hands them to the scheduler.

The engine commits a batch only once all its deliveries are made, failed or skipped, while later
batches go on; the `notification.sent` records are published then, and failed deliveries send
their cause to the DLQ with the reason. The batch's card updates are planned together (one per
card), and an agent's reply is followed by what shows its fate (a reaction on the agent's thread
message, an ephemeral message) once it is made or failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.notifier.card_updates import card_updates
from services.notifier.deliveries import DeliveryScheduler, Failed, Outcome
from services.notifier.ledger import Ledger
from services.notifier.plan import Delivery, NotifierView, TicketContext, plan, reply_outcome
from shared.config import DeskConfig
from shared.engine import BatchResult, Record
from shared.events import (
    CommandRejected,
    MessageAdded,
    NotificationSent,
    StatusChanged,
    TicketCreated,
    TicketEvent,
    TicketSuggestions,
)
from shared.identities import normalise_email
from shared.publisher import Outgoing
from shared.topics import TICKETS, Topics

logger = logging.getLogger(__name__)


class NotifierHandler:
    def __init__(
        self,
        config: DeskConfig,
        ledger: Ledger,
        scheduler: DeliveryScheduler,
        topics: Topics,
        links: tuple[Callable[[str], str], Callable[[str], str]] | None = None,
    ):
        self.config = config
        # The help centre's article and "this solved it" URLs (NotifierView), when the notifier knows them.
        self.links = links
        self.ledger = ledger
        self.scheduler = scheduler
        self.tickets_topic = topics.name(TICKETS)

    async def handle(self, records: list[Record[TicketEvent]]) -> BatchResult:
        records = [record for record in records if not isinstance(record.value, NotificationSent)]
        if not records:
            return BatchResult()
        events = [record.value for record in records]
        view = await self._view(events)
        planned = [(record, delivery) for record in records for delivery in plan(record.value, view, self.config)]
        last_of_ticket = {record.value.ticket_id: record for record in records}
        planned += [
            (last_of_ticket[update.ticket_id], update)
            for update in card_updates(events, [delivery for _, delivery in planned], view, self.config)
        ]
        for event in events:
            if isinstance(event, CommandRejected) and event.origin is None:
                logger.info("command rejected", extra={"ticket_id": event.ticket_id, "reason": event.reason})
        deliverable = [self.scheduler.deliverable(delivery) for _, delivery in planned]
        off = [pair for pair, ok in zip(planned, deliverable, strict=True) if not ok]
        planned = [pair for pair, ok in zip(planned, deliverable, strict=True) if ok]
        # A reply on a channel that is off shows the agent it went nowhere.
        planned += [
            (record, follow_up)
            for record, delivery in off
            if delivery.purpose == "reply"
            for follow_up in self._outcome_of(record.value, f"the {delivery.channel} channel is off", view)
            if self.scheduler.deliverable(follow_up)
        ]
        planned = await self._within_acknowledgement_limits(planned)
        if not planned:
            return BatchResult()
        tasks = self.scheduler.submit([delivery for _, delivery in planned])
        return BatchResult(pending=asyncio.ensure_future(self._settled(planned, tasks, view)))

    async def _settled(
        self,
        planned: list[tuple[Record[TicketEvent], Delivery]],
        tasks: list[asyncio.Task[Outcome]],
        view: NotifierView,
    ) -> BatchResult:
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        result = BatchResult()
        follow_ups: list[tuple[Record[TicketEvent], Delivery]] = []
        for (record, delivery), outcome in zip(planned, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # A bug, not the outside world: the engine stops rather than dead-letter every event.
                raise outcome
            if delivery.purpose == "reply":
                failure = None if isinstance(outcome, NotificationSent) else outcome.reason
                follow_ups += [(record, follow_up) for follow_up in self._outcome_of(record.value, failure, view)]
            if isinstance(outcome, NotificationSent):
                result.publish.append(Outgoing.event(self.tickets_topic, outcome.ticket_id, outcome))
                continue
            if delivery.purpose == "acknowledgement":
                await self.ledger.release_acknowledgement(
                    delivery.target, claimed_key=delivery.key if delivery.claimed else None
                )
            if isinstance(outcome, Failed):
                result.rejected.append((record, f"{delivery.purpose} to {delivery.target}: {outcome.reason}"))
        follow_ups = [(record, delivery) for record, delivery in follow_ups if self.scheduler.deliverable(delivery)]
        for (_, delivery), outcome in zip(
            follow_ups, await asyncio.gather(*self.scheduler.submit([d for _, d in follow_ups])), strict=True
        ):
            if isinstance(outcome, NotificationSent):
                result.publish.append(Outgoing.event(self.tickets_topic, outcome.ticket_id, outcome))
            else:
                # The reply's own outcome is what matters (a failed one is dead-lettered); this only showed it.
                logger.warning("reply's outcome not shown", extra={"key": delivery.key, "reason": outcome.reason})
        return result

    def _outcome_of(self, event: TicketEvent, failure: str | None, view: NotifierView) -> list[Delivery]:
        if not isinstance(event, MessageAdded):
            return []
        return reply_outcome(event, failure, self.config, view.tickets.get(event.ticket_id, TicketContext()))

    async def _within_acknowledgement_limits(
        self, planned: list[tuple[Record[TicketEvent], Delivery]]
    ) -> list[tuple[Record[TicketEvent], Delivery]]:
        """Acknowledgements beyond the hourly limit per contact are not sent (a loop breaker); to an address
        nobody proved (`Delivery.claimed`), beyond the lower `claimed_*` limits (issue #16)."""
        acknowledgements = [delivery for _, delivery in planned if delivery.purpose == "acknowledgement"]
        if not acknowledgements:
            return planned
        limits = self.config.acknowledgements
        allowed = await self.ledger.reserve_acknowledgements(
            [(delivery.key, delivery.target) for delivery in acknowledgements],
            limits.per_hour,
            claimed=frozenset(delivery.key for delivery in acknowledgements if delivery.claimed),
            claimed_limits=(limits.claimed_per_hour, limits.claimed_total_per_hour),
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
        routes += [event.csat_route for event in events if isinstance(event, StatusChanged) and event.csat_route]
        routes += [e.deflect_route for e in events if isinstance(e, TicketSuggestions) and e.deflect_route]
        emails = list(dict.fromkeys(normalise_email(route.address) for route in routes if route.channel == "email"))
        channels = list(dict.fromkeys(f"slack:{team.slack_channel}" for team in self.config.teams))
        rows, bounced = await self.ledger.context(tickets, emails, channels)
        # Whether a web form's address was proved on a channel decides its acknowledgement's limit.
        typed_in = [e.contact.contact_id for e in events if isinstance(e, TicketCreated) and e.channel == "form"]
        return NotifierView(
            tickets={
                ticket_id: TicketContext(*fields, cards=tuple(cards))
                for ticket_id, (fields, cards) in zip(tickets, rows, strict=True)
            },
            undeliverable=bounced,
            verified=await self.ledger.verified(list(dict.fromkeys(typed_in))),
            article_url=self.links[0] if self.links else None,
            deflection_url=self.links[1] if self.links else None,
        )
