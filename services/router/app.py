"""The router: turns inbound messages into ticket events — contact, ticket, classification, assignee."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from faststream.asgi import AsgiFastStream
from pydantic import TypeAdapter
from redis.asyncio import Redis

from services.router.assignment import round_robin
from services.router.classification import classify
from services.router.tickets import message_added, new_ticket
from shared.config import DeskConfig
from shared.events import ContactSummary, InboundMessage, TicketEvent
from shared.ids import derived_id
from shared.publishing import publish_keyed
from shared.read_model import ReadModel, email_identity_key
from shared.service import ConsumerService
from shared.settings import Settings
from shared.topics import INBOUND, TICKETS

logger = logging.getLogger(__name__)

GROUP_ID = "switchboard-router"
# How long the router remembers what it decided for a message, so a redelivery repeats it exactly.
OUTCOME_TTL_SECONDS = 7 * 24 * 3600
_outcome_adapter: TypeAdapter[list[TicketEvent]] = TypeAdapter(list[TicketEvent])


class Router:
    def __init__(self, config: DeskConfig, redis: Redis):
        self.config = config
        self.redis = redis
        self.read_model = ReadModel(redis)

    async def route(self, message: InboundMessage) -> list[TicketEvent]:
        """The events for this message; a redelivered message gets the very same events back."""
        outcome_key = f"sb:router:outcome:{message.message_id}"
        if (remembered := await self.redis.get(outcome_key)) is not None:
            return _outcome_adapter.validate_json(remembered)
        now = datetime.now(UTC)
        if await self.read_model.ticket_exists(message.ticket_id):
            events: list[TicketEvent] = [message_added(message, now)]
        else:
            contact = await self._resolve_contact(message)
            classification = classify(message, self.config)
            team = self.config.team(classification.team)
            turn = await self.redis.incr(f"sb:router:turn:{team.id}") - 1
            assignee = self.config.agent(round_robin(team.members, turn))
            events = new_ticket(message, contact, classification, assignee, now)
        # Whoever records first wins: a concurrent redelivery (e.g. during a rebalance) gets the
        # winner's events instead of assigning the ticket a second time.
        earlier = await self.redis.set(
            outcome_key, _outcome_adapter.dump_json(events), nx=True, ex=OUTCOME_TTL_SECONDS, get=True
        )
        return _outcome_adapter.validate_json(earlier) if earlier is not None else events

    async def _resolve_contact(self, message: InboundMessage) -> ContactSummary:
        candidate = f"c_{derived_id('contact', message.message_id).hex[:16]}"
        contact_id = candidate
        if message.sender.email:
            existing = await self.redis.set(email_identity_key(message.sender.email), candidate, nx=True, get=True)
            contact_id = existing or candidate
        return ContactSummary(contact_id=contact_id, name=message.sender.name, email=message.sender.email)


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    service = ConsumerService("router", GROUP_ID, settings)
    router = Router(service.config, service.redis)
    tickets_topic = service.topics.name(TICKETS)

    @service.subscriber(INBOUND)
    async def route_inbound(message: InboundMessage) -> None:
        events = await router.route(message)
        await publish_keyed(service.broker, tickets_topic, events)
        await router.read_model.apply(events)
        logger.info("routed", extra={"ticket_id": message.ticket_id, "events": [event.type for event in events]})

    return service.app()
