"""The router: turns inbound messages and agent commands into ticket events."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from faststream.asgi import AsgiFastStream
from pydantic import TypeAdapter
from redis.asyncio import Redis

from services.router.assignment import round_robin
from services.router.classification import classify
from services.router.tickets import agent_reply, message_added, new_ticket
from shared.broker import PermanentFailure
from shared.config import DeskConfig
from shared.events import AgentReply, ContactSummary, InboundMessage, ReplyRoute, TicketEvent
from shared.identities import identities_of, normalise_email
from shared.ids import derived_id
from shared.publishing import publish_keyed
from shared.read_model import UNDELIVERABLE_KEY, ReadModel, contact_identities_key, identity_key
from shared.service import ConsumerService
from shared.settings import Settings
from shared.topics import COMMANDS, INBOUND, TICKETS

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
        return await self._remembered(str(message.message_id), lambda: self._decide(message))

    async def apply_command(self, command: AgentReply) -> list[TicketEvent]:
        return await self._remembered(str(command.event_id), lambda: self._decide_reply(command))

    async def _remembered(self, key: str, decide) -> list[TicketEvent]:
        outcome_key = f"sb:router:outcome:{key}"
        if (remembered := await self.redis.get(outcome_key)) is not None:
            return _outcome_adapter.validate_json(remembered)
        events = await decide()
        # Whoever records first wins: a concurrent redelivery (e.g. during a rebalance) gets the
        # winner's events instead of assigning the ticket a second time.
        earlier = await self.redis.set(
            outcome_key, _outcome_adapter.dump_json(events), nx=True, ex=OUTCOME_TTL_SECONDS, get=True
        )
        return _outcome_adapter.validate_json(earlier) if earlier is not None else events

    async def _decide(self, message: InboundMessage) -> list[TicketEvent]:
        now = datetime.now(UTC)
        if message.kind == "bounce" and message.bounced_recipients:
            await self.redis.sadd(UNDELIVERABLE_KEY, *(normalise_email(a) for a in message.bounced_recipients))
        ticket = await self.read_model.ticket_fields(message.ticket_id)
        if message.kind not in ("message", "edit"):
            # Machine mail never opens a ticket; on an existing one it is recorded, never answered.
            return [message_added(message, now, contact_id=None)] if ticket else []
        if ticket:
            review = await self._review_reason(message, ticket["contact_id"])
            return [message_added(message, now, contact_id=ticket["contact_id"], review=review)]
        contact = await self._resolve_contact(message)
        classification = classify(message, self.config)
        team = self.config.team(classification.team)
        turn = await self.redis.incr(f"sb:router:turn:{team.id}") - 1
        assignee = self.config.agent(round_robin(team.members, turn))
        return new_ticket(message, contact, classification, assignee, now)

    async def _decide_reply(self, command: AgentReply) -> list[TicketEvent]:
        ticket = await self.read_model.ticket_fields(command.ticket_id)
        if not ticket:
            raise PermanentFailure(f"reply to unknown ticket {command.ticket_id}")
        route = ReplyRoute.model_validate_json(ticket["reply_route"]) if "reply_route" in ticket else None
        return [agent_reply(command, ticket["channel"], route, datetime.now(UTC))]

    async def _review_reason(self, message: InboundMessage, contact_id: str) -> str | None:
        """Anyone can reply into an email thread: mail from someone else is a note for review (Zammad #5064)."""
        if message.channel != "email" or not message.sender.email:
            return None
        known = await self.redis.smembers(contact_identities_key(contact_id))
        if f"email:{normalise_email(message.sender.email)}" in known:
            return None
        return "the sender is not the ticket's contact"

    async def _resolve_contact(self, message: InboundMessage) -> ContactSummary:
        """The contact owning the sender's strongest known identity, else a new one claiming them."""
        identities = identities_of(message.sender)
        contact_id = None
        for identity in identities:
            if (contact_id := await self.redis.get(identity_key(identity))) is not None:
                break
        if contact_id is None:
            contact_id = f"c_{derived_id('contact', message.message_id).hex[:16]}"
            if identities:
                # Two messages from one new address at once must still make one contact.
                claimed = await self.redis.set(identity_key(identities[0]), contact_id, nx=True, get=True)
                contact_id = claimed or contact_id
        return ContactSummary(
            contact_id=contact_id, name=message.sender.name, email=message.sender.email, identities=identities
        )


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    service = ConsumerService("router", GROUP_ID, settings)
    router = Router(service.config, service.redis)
    tickets_topic = service.topics.name(TICKETS)

    async def emit(events: list[TicketEvent]) -> None:
        await publish_keyed(service.broker, tickets_topic, events)
        await router.read_model.apply(events)

    @service.subscriber(INBOUND)
    async def route_inbound(message: InboundMessage) -> None:
        events = await router.route(message)
        await emit(events)
        logger.info("routed", extra={"ticket_id": message.ticket_id, "events": [event.type for event in events]})

    @service.subscriber(COMMANDS)
    async def apply_command(command: AgentReply) -> None:
        await emit(await router.apply_command(command))
        logger.info("command applied", extra={"ticket_id": command.ticket_id, "command": command.type})

    return service.app()
