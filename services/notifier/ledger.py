"""The notifier's record of what it sent, in Redis: a projection of `notification.sent` events.

- `sb:notifier:sent:<key>`: the delivery was made (its external ID and when), so it is never made
  twice; `switchboard replay` rebuilds these from the events.
- `sb:notifier:thread:<ticket>`: the Slack ts of the ticket's announcement, the root of its thread.
- `sb:notifier:acks:<channel>:<address>`: acknowledgements sent this hour (a loop breaker).
- `sb:notifier:intent:<key>`: a delivery being made right now (a lease), recorded before the call,
  so that another instance (after a rebalance) waits for it instead of sending it again.
- the conversation index (`shared.conversations`): our Message-IDs and Telegram message IDs lead
  customers' replies to the ticket.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from shared.conversations import conversation_key
from shared.events import NotificationSent
from shared.read_model import UNDELIVERABLE_KEY, ticket_key

SENT_TTL_SECONDS = 30 * 24 * 3600
ACKNOWLEDGEMENT_WINDOW_SECONDS = 3600
INTENT_LEASE_SECONDS = 120


def sent_key(key: str) -> str:
    return f"sb:notifier:sent:{key}"


def thread_key(ticket_id: str) -> str:
    return f"sb:notifier:thread:{ticket_id}"


def acknowledgements_key(counter: str) -> str:
    return f"sb:notifier:acks:{counter}"


def intent_key(key: str) -> str:
    return f"sb:notifier:intent:{key}"


# Takes one of the hour's acknowledgements for KEYS[1] unless ARGV[1] are taken; a delivery already
# sent (KEYS[2]) is let through without taking another.
_RESERVE_ACKNOWLEDGEMENT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
local taken = redis.call('INCR', KEYS[1])
if taken == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if taken > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return 0
end
return 1
"""


def project_sent(pipe: Any, event: NotificationSent, now: datetime, *, count_acknowledgement: bool = True) -> None:
    """Queues on `pipe` what a sent notification changes; the same for the notifier and replay.

    The live notifier counts an acknowledgement when it reserves it (`Ledger.reserve_acknowledgements`),
    so it passes `count_acknowledgement=False`; replay counts the ones sent within the last hour.
    """
    record = {
        "external_id": event.external_id,
        "at": event.occurred_at.isoformat(),
        "digest": event.digest,
        "conversations": event.conversations,
    }
    pipe.set(sent_key(event.key), json.dumps(record), ex=SENT_TTL_SECONDS)
    if event.purpose == "announcement" and event.external_id:
        pipe.set(thread_key(event.ticket_id), event.external_id, nx=True)
    for conversation in event.conversations:
        pipe.set(conversation_key(conversation), event.ticket_id)
    age = (now - event.occurred_at).total_seconds()
    if count_acknowledgement and event.purpose == "acknowledgement" and age < ACKNOWLEDGEMENT_WINDOW_SECONDS:
        counter = acknowledgements_key(event.target)
        pipe.incr(counter)
        pipe.expire(counter, int(ACKNOWLEDGEMENT_WINDOW_SECONDS - age) + 1, nx=True)
    pipe.delete(intent_key(event.key))


class Ledger:
    def __init__(self, redis: Redis, *, intent_lease_seconds: float = INTENT_LEASE_SECONDS):
        """`intent_lease_seconds`: how long a recorded intent holds off other senders (longer than any call takes)."""
        self.redis = redis
        self.intent_lease_seconds = intent_lease_seconds
        self._reserve = redis.register_script(_RESERVE_ACKNOWLEDGEMENT)

    async def context(
        self, ticket_ids: Sequence[str], emails: Sequence[str]
    ) -> tuple[list[list[str | None]], set[str]]:
        """For a batch: the read model's fields of each ticket, and which of `emails` bounced."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for ticket_id in ticket_ids:
                pipe.hmget(ticket_key(ticket_id), "team", "opened_by", "assignee_slack_user_id")
            if emails:
                pipe.smismember(UNDELIVERABLE_KEY, list(emails))
            results = await pipe.execute()
        bounced = {email for email, member in zip(emails, results[-1], strict=True) if member} if emails else set()
        return results[: len(ticket_ids)], bounced

    async def reserve_acknowledgements(self, deliveries: Sequence[tuple[str, str]], per_hour: int) -> list[bool]:
        """For each (delivery key, target): whether it may go out within the hourly limit (it is counted now)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, target in deliveries:
                await self._reserve(
                    keys=[acknowledgements_key(target), sent_key(key)],
                    args=[per_hour, ACKNOWLEDGEMENT_WINDOW_SECONDS],
                    client=pipe,
                )
            return [bool(allowed) for allowed in await pipe.execute()]

    async def release_acknowledgement(self, target: str) -> None:
        """Gives back a reserved acknowledgement that was not sent (a relay outage must not use up the quota)."""
        await self.redis.decr(acknowledgements_key(target))

    async def sent(self, key: str) -> dict[str, Any] | None:
        record = await self.redis.get(sent_key(key))
        return json.loads(record) if record else None

    async def thread(self, ticket_id: str) -> str | None:
        return await self.redis.get(thread_key(ticket_id))

    async def begin(self, key: str, owner: str) -> bool:
        """Records the intent to send; False when another sender holds it (and may have sent)."""
        return bool(await self.redis.set(intent_key(key), owner, nx=True, px=int(self.intent_lease_seconds * 1000)))

    async def end(self, key: str) -> None:
        await self.redis.delete(intent_key(key))

    async def record(self, event: NotificationSent, now: datetime) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            project_sent(pipe, event, now, count_acknowledgement=False)
            await pipe.execute()
