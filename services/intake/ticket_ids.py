"""Minting and remembering ticket IDs, unique across every intake instance and across a lost Redis.

One Redis counter per prefix. Minting refuses (`StateNotRestored`) while Redis lacks the state
marker (shared.state): after Redis lost its data only `switchboard replay`, which sets the counter
to at least the highest number in the log, may let minting go on, so a number is never handed out
twice.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.ids import format_ticket_id
from shared.state import RESTORED_KEY, StateNotRestored

_NOT_RESTORED = "SBNOTRESTORED"
_MINT = f"""
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('{_NOT_RESTORED} Switchboard state not restored')
end
return redis.call('INCR', KEYS[2])
"""


def sequence_key(prefix: str) -> str:
    return f"sb:intake:ticket_sequence:{prefix}"


def remembered_key(channel_key: str) -> str:
    return f"sb:intake:ticket_for:{channel_key}"


class TicketIds:
    def __init__(self, redis: Redis, prefix: str):
        self.redis = redis
        self.prefix = prefix
        self._mint = redis.register_script(_MINT)

    async def mint(self) -> str:
        """A new ticket ID; raises StateNotRestored while Redis lost its state."""
        try:
            sequence = await self._mint(keys=[RESTORED_KEY, sequence_key(self.prefix)])
        except ResponseError as error:
            if str(error).startswith(_NOT_RESTORED):
                raise StateNotRestored() from error
            raise
        return format_ticket_id(self.prefix, sequence)

    async def remembered(self, channel_key: str) -> str | None:
        return await self.redis.get(remembered_key(channel_key))

    async def remember(self, channel_key: str, ticket_id: str) -> str:
        """Records the channel message's ticket; if another delivery recorded one first, that one wins."""
        earlier = await self.redis.set(remembered_key(channel_key), ticket_id, nx=True, get=True)
        return earlier or ticket_id
