"""Minting and remembering ticket IDs, unique across every intake instance (one Redis counter)."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.ids import format_ticket_id

_SEQUENCE_KEY = "sb:intake:ticket_sequence"


def _remembered_key(channel_key: str) -> str:
    return f"sb:intake:ticket_for:{channel_key}"


class TicketIds:
    def __init__(self, redis: Redis, prefix: str):
        self.redis = redis
        self.prefix = prefix

    async def mint(self) -> str:
        return format_ticket_id(self.prefix, await self.redis.incr(_SEQUENCE_KEY))

    async def remembered(self, channel_key: str) -> str | None:
        return await self.redis.get(_remembered_key(channel_key))

    async def remember(self, channel_key: str, ticket_id: str) -> str:
        """Records the channel message's ticket; if another delivery recorded one first, that one wins."""
        earlier = await self.redis.set(_remembered_key(channel_key), ticket_id, nx=True, get=True)
        return earlier or ticket_id
