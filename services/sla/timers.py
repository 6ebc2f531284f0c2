"""Durable SLA timers in Redis sorted sets.

A timer is claimed atomically before it fires, so with several SLA instances each fires once; a
claim is a lease, so a timer whose instance died before finishing fires again after the lease.
Each ticket's timers per metric are also kept in a set, so that meeting a clock stops its timers
(and a status change the ticket's auto-close).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from services.sla.deadlines import Timer

SCHEDULED_KEY = "sb:sla:timers"
CLAIMED_KEY = "sb:sla:claimed"
# The digest of the config (and Switchboard version) the open clocks were last reconciled with
# (services.sla.handler.config_digest); absent, the next start reconciles them all.
RECONCILED_KEY = "sb:sla:reconciled_with"


def ticket_timers_key(ticket_id: str, metric: str) -> str:
    return f"sb:sla:ticket:{ticket_id}:{metric}"


def clocks_key(ticket_id: str) -> str:
    """A ticket's SLA state (services.sla.decide.TicketSla as JSON), until the ticket closes."""
    return f"sb:sla:clocks:{ticket_id}"


# Moves up to ARGV[3] members due by ARGV[1] from KEYS[1] to KEYS[2], scored with the lease end ARGV[2].
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], ARGV[2], member)
end
return due
"""
# Stops every timer in the set KEYS[3] (scheduled in KEYS[1] or claimed in KEYS[2]).
_CANCEL = """
local members = redis.call('SMEMBERS', KEYS[3])
for _, member in ipairs(members) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
end
redis.call('DEL', KEYS[3])
return #members
"""


class TimerStore:
    def __init__(self, redis: Redis, lease_seconds: float = 30.0):
        self.redis = redis
        self.lease_seconds = lease_seconds
        self._move_due = redis.register_script(_MOVE_DUE)
        self._cancel = redis.register_script(_CANCEL)

    async def write(self, pipe: Any, schedule: Sequence[Timer], cancel: Sequence[tuple[str, str]]) -> None:
        """Queues scheduling and cancelling on `pipe` (a pipeline), so they go with the batch's other writes."""
        if schedule:
            pipe.zadd(SCHEDULED_KEY, {timer.encode(): timer.fires_at for timer in schedule})
        for timer in schedule:
            pipe.sadd(ticket_timers_key(timer.ticket_id, timer.metric), timer.encode())
        for ticket_id, metric in cancel:
            await self._cancel(keys=[SCHEDULED_KEY, CLAIMED_KEY, ticket_timers_key(ticket_id, metric)], client=pipe)

    async def replace(self, pipe: Any, timers: Mapping[tuple[str, str], Sequence[Timer]]) -> None:
        """Queues on `pipe`: the timers of each (ticket ID, metric) become those given (none: none)."""
        await self.write(pipe, [], list(timers))
        await self.write(pipe, [timer for replaced in timers.values() for timer in replaced], [])

    async def schedule(self, timers: Sequence[Timer]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            await self.write(pipe, timers, [])
            await pipe.execute()

    async def claim_due(self, now: float, limit: int = 500) -> list[Timer]:
        # Leases that ran out (their instance died) become due again first.
        await self._move_due(keys=[CLAIMED_KEY, SCHEDULED_KEY], args=[now, now, limit])
        claimed = await self._move_due(keys=[SCHEDULED_KEY, CLAIMED_KEY], args=[now, now + self.lease_seconds, limit])
        return [Timer.decode(member) for member in claimed]

    async def finished(self, timers: Sequence[Timer]) -> None:
        if not timers:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(CLAIMED_KEY, *(timer.encode() for timer in timers))
            for timer in timers:
                pipe.srem(ticket_timers_key(timer.ticket_id, timer.metric), timer.encode())
            await pipe.execute()

    async def next_fire_time(self) -> float | None:
        first = await self.redis.zrange(SCHEDULED_KEY, 0, 0, withscores=True)
        return first[0][1] if first else None
