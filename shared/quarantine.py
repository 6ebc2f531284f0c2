"""The quarantine in Redis: a projection of the quarantine topic, newest first.

Intake writes each `MessageQuarantined` here after Kafka acknowledged it, and each `MessageReleased`
after a release (services/intake/release.py); `switchboard replay` rebuilds the same state from the
topic alone. Applying an event twice changes nothing.

Keys: one JSON document per message, its release (when released), and sorted sets of message IDs
scored by the time of quarantine (Unix seconds): all of them, and one per channel and per reason code
for filtering. A message read here carries `released`: its release event's JSON object, or None.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from shared.events import MessageQuarantined, MessageReleased

_ALL_KEY = "sb:quarantine:index"
# Listing reads an index in pages of this many IDs, newest first.
_PAGE = 200


def _entry_key(message_id: UUID | str) -> str:
    return f"sb:quarantine:message:{message_id}"


def _released_key(message_id: UUID | str) -> str:
    return f"sb:quarantine:released:{message_id}"


def _channel_key(channel: str) -> str:
    return f"sb:quarantine:index:channel:{channel}"


def _reason_key(reason_code: str) -> str:
    return f"sb:quarantine:index:reason:{reason_code}"


class Quarantine:
    def __init__(self, redis: Redis):
        self.redis = redis

    async def apply(self, events: Sequence[MessageQuarantined | MessageReleased]) -> None:
        if not events:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                if isinstance(event, MessageReleased):
                    # NX: the first release is the one that counts (a second one published nothing new).
                    pipe.set(_released_key(event.message_id), event.model_dump_json(), nx=True)
                    continue
                score = event.occurred_at.timestamp()
                member = str(event.message_id)
                # NX: a redelivered event keeps its place (the first quarantine's time).
                pipe.set(_entry_key(member), event.model_dump_json(), nx=True)
                for index in (_ALL_KEY, _channel_key(event.channel), _reason_key(event.reason_code)):
                    pipe.zadd(index, {member: score}, nx=True)
            await pipe.execute()

    async def contains(self, message_id: UUID | str) -> bool:
        return bool(await self.redis.exists(_entry_key(message_id)))

    async def get(self, message_id: UUID | str) -> dict[str, Any] | None:
        """The quarantined message as its event's JSON object with `released`, or None."""
        found, released = await self.redis.mget([_entry_key(message_id), _released_key(message_id)])
        return _read(found, released) if found else None

    async def list(
        self, *, limit: int = 50, channel: str | None = None, reason_code: str | None = None
    ) -> list[dict[str, Any]]:
        """Up to `limit` quarantined messages, newest first, of that channel and reason code if given."""
        index = _reason_key(reason_code) if reason_code else _channel_key(channel) if channel else _ALL_KEY
        found: list[dict[str, Any]] = []
        start = 0
        while len(found) < limit:
            ids = await self.redis.zrevrange(index, start, start + _PAGE - 1)
            if not ids:
                break
            start += len(ids)
            keys = [key for message_id in ids for key in (_entry_key(message_id), _released_key(message_id))]
            rows = await self.redis.mget(keys)
            for entry, released in zip(rows[::2], rows[1::2], strict=True):
                if entry is None:
                    continue
                event = _read(entry, released)
                if channel is None or event["channel"] == channel:
                    found.append(event)
        return found[:limit]


def _read(entry: str | bytes, released: str | bytes | None) -> dict[str, Any]:
    return {**json.loads(entry), "released": json.loads(released) if released else None}
