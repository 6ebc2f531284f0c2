"""Reads a ticket's card from the read model at the moment it is sent, so it shows the current state."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from services.notifier.cards import Card, card_state, ticket_card
from services.notifier.ledger import card_shown_key
from services.notifier.pipelining import GroupPipeline
from shared import i18n
from shared.config import DeskConfig
from shared.read_model import contact_identities_key, contact_key, messages_key, ticket_key

# KEYS: the ticket's hash, its messages, the card's digest (optional). ARGV: the contact's hash and identities
# keys with "{contact}" for its ID (taken from the ticket). Answers {ticket fields (flat), opening message,
# digest, contact name, contact identities}, absent ones false: one round trip for all a card shows.
_READ_CARD = """
local function of_contact(template, contact_id)
  local at = string.find(template, '{contact}', 1, true)
  return string.sub(template, 1, at - 1) .. contact_id .. string.sub(template, at + 9)
end
local fields = redis.call('HGETALL', KEYS[1])
local first = redis.call('LINDEX', KEYS[2], 0)
local shown = false
if KEYS[3] then shown = redis.call('GET', KEYS[3]) end
local name, identities = false, {}
for i = 1, #fields, 2 do
  if fields[i] == 'contact_id' and fields[i + 1] ~= '' then
    name = redis.call('HGET', of_contact(ARGV[1], fields[i + 1]), 'name')
    identities = redis.call('SMEMBERS', of_contact(ARGV[2], fields[i + 1]))
  end
end
return {fields, first, shown, name, identities}
"""
_CONTACT = "{contact}"


class TicketCards:
    def __init__(self, redis: Redis, config: DeskConfig):
        self.redis = redis
        self.config = config
        self._script = redis.register_script(_READ_CARD)
        self._contact_keys = (contact_key(_CONTACT), contact_identities_key(_CONTACT))
        # The cards of a batch's tickets are read together (one round trip for all of them).
        self._reads = GroupPipeline(redis)

    async def __call__(self, ticket_id: str, target: str | None = None) -> tuple[Card | None, str | None]:
        """The ticket's card now (None when the read model does not hold the ticket) and, given the `target`
        ("slack:C0SUPPORT") of a card already posted, the digest of what that card shows (None: unknown)."""
        keys = [ticket_key(ticket_id), messages_key(ticket_id)]
        if target is not None:
            keys.append(card_shown_key(ticket_id, target))
        # A ticket's cards are posted together (the channel's, the assignee's DM): read once for both.
        [found] = await self._reads.execute(
            lambda pipe: pipe.evalsha(self._script.sha, len(keys), *keys, *self._contact_keys),
            scripts=[self._script],
            share=None if target else ticket_id,
        )
        flat, first, shown, name, identities = found
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        if "id" not in fields:
            return None, None
        email = min((i.partition(":")[2] for i in identities if i.startswith("email:")), default=None)
        team = next((team for team in self.config.teams if team.id == fields.get("team")), None)
        excerpt = json.loads(first).get("text") if first else None
        card = ticket_card(
            card_state(
                fields,
                contact_name=name or None,
                contact_email=email,
                team_name=team.name if team else None,
                excerpt=excerpt,
            ),
            # The team's language; the assignee's DM shows the same card.
            i18n.texts(self.config.team_locale(team) if team else self.config.desk_locale),
        )
        return card, shown or None
