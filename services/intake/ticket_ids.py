"""Minting and resolving ticket IDs, unique across every intake instance (one Redis counter)."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.ids import format_ticket_id

_SEQUENCE_KEY = "sb:intake:ticket_sequence"


class TicketIds:
    def __init__(self, redis: Redis, prefix: str):
        self.redis = redis
        self.prefix = prefix

    async def mint(self) -> str:
        return format_ticket_id(self.prefix, await self.redis.incr(_SEQUENCE_KEY))

    async def for_channel_message(self, channel_key: str) -> str:
        """The ticket a channel's message belongs to: the one it got the first time it was seen."""
        remembered_key = f"sb:intake:ticket_for:{channel_key}"
        if (known := await self.redis.get(remembered_key)) is not None:
            return known
        minted = await self.mint()
        earlier = await self.redis.set(remembered_key, minted, nx=True, get=True)
        return earlier or minted
