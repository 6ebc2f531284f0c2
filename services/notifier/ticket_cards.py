"""Reads a ticket's card from the read model at the moment it is sent, so it shows the current state."""

from __future__ import annotations

from redis.asyncio import Redis

from services.notifier.cards import Card, card_state, ticket_card
from shared.config import DeskConfig
from shared.read_model import ReadModel, contact_identities_key, contact_key


class TicketCards:
    def __init__(self, redis: Redis, config: DeskConfig):
        self.redis = redis
        self.config = config
        self.read_model = ReadModel(redis)

    async def __call__(self, ticket_id: str) -> Card | None:
        """The ticket's card now, or None when the read model does not hold the ticket."""
        fields = await self.read_model.ticket_fields(ticket_id)
        if "id" not in fields:
            return None
        first = await self.read_model.first_message(ticket_id)
        name = email = None
        if contact_id := fields.get("contact_id"):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hget(contact_key(contact_id), "name")
                pipe.smembers(contact_identities_key(contact_id))
                name, identities = await pipe.execute()
            email = min((i.partition(":")[2] for i in identities if i.startswith("email:")), default=None)
        team = next((team for team in self.config.teams if team.id == fields.get("team")), None)
        excerpt = first.get("text") if first else None
        return ticket_card(
            card_state(
                fields, contact_name=name, contact_email=email, team_name=team.name if team else None, excerpt=excerpt
            )
        )
