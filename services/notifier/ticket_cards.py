"""Reads a ticket's card from the read model at the moment it is sent, so it shows the current state."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from services.notifier.cards import Card, card_state, ticket_card
from services.notifier.ledger import card_shown_key
from services.notifier.pipelining import GroupPipeline
from shared.config import DeskConfig
from shared.read_model import contact_identities_key, contact_key, first_message_key, ticket_key


class TicketCards:
    def __init__(self, redis: Redis, config: DeskConfig):
        self.config = config
        # The cards of a batch's tickets are read together (two round trips for all of them).
        self._reads = GroupPipeline(redis)

    async def __call__(self, ticket_id: str, target: str | None = None) -> tuple[Card | None, str | None]:
        """The ticket's card now (None when the read model does not hold the ticket) and, given the `target`
        ("slack:C0SUPPORT") of a card already posted, the digest of what that card shows (None: unknown)."""

        def ticket(pipe):
            pipe.hgetall(ticket_key(ticket_id))
            pipe.lindex(*first_message_key(ticket_id))
            if target is not None:
                pipe.get(card_shown_key(ticket_id, target))

        fields, first, *shown = await self._reads.execute(ticket)
        if "id" not in fields:
            return None, None
        name = email = None
        if contact_id := fields.get("contact_id"):

            def contact(pipe):
                pipe.hget(contact_key(contact_id), "name")
                pipe.smembers(contact_identities_key(contact_id))

            name, identities = await self._reads.execute(contact)
            email = min((i.partition(":")[2] for i in identities if i.startswith("email:")), default=None)
        team = next((team for team in self.config.teams if team.id == fields.get("team")), None)
        excerpt = json.loads(first).get("text") if first else None
        card = ticket_card(
            card_state(
                fields, contact_name=name, contact_email=email, team_name=team.name if team else None, excerpt=excerpt
            )
        )
        return card, shown[0] if shown else None
