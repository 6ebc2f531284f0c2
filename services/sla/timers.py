"""Durable SLA timers in Redis sorted sets.

A timer is claimed atomically before it fires, so with several SLA instances each fires once; a
claim is a lease, so a timer whose instance died before finishing fires again after the lease.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from services.sla.deadlines import Timer

_SCHEDULED = "sb:sla:timers"
_CLAIMED = "sb:sla:claimed"


def _ticket_timers_key(ticket_id: str) -> str:
    return f"sb:sla:ticket:{ticket_id}"


# Moves up to ARGV[3] members due by ARGV[1] from KEYS[1] to KEYS[2], scored with the lease end ARGV[2].
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], ARGV[2], member)
end
return due
"""


class TimerStore:
    def __init__(self, redis: Redis, lease_seconds: float = 30.0):
        self.redis = redis
        self.lease_seconds = lease_seconds
        self._move_due = redis.register_script(_MOVE_DUE)

    async def schedule(self, timers: Sequence[Timer]) -> None:
        if not timers:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(_SCHEDULED, {timer.encode(): timer.fires_at for timer in timers})
            for timer in timers:
                pipe.sadd(_ticket_timers_key(timer.ticket_id), timer.encode())
            await pipe.execute()

    async def cancel(self, ticket_id: str, metric: str) -> None:
        """Stops a ticket's timers for `metric`, e.g. when the first response was given."""
        members = [
            member
            for member in await self.redis.smembers(_ticket_timers_key(ticket_id))
            if Timer.decode(member).metric == metric
        ]
        if members:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(_SCHEDULED, *members)
                pipe.zrem(_CLAIMED, *members)
                pipe.srem(_ticket_timers_key(ticket_id), *members)
                await pipe.execute()

    async def claim_due(self, now: float, limit: int = 100) -> list[Timer]:
        await self._move_due(keys=[_CLAIMED, _SCHEDULED], args=[now, now, limit])
        claimed = await self._move_due(keys=[_SCHEDULED, _CLAIMED], args=[now, now + self.lease_seconds, limit])
        return [Timer.decode(member) for member in claimed]

    async def finished(self, timer: Timer) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(_CLAIMED, timer.encode())
            pipe.srem(_ticket_timers_key(timer.ticket_id), timer.encode())
            await pipe.execute()

    async def next_fire_time(self) -> float | None:
        first = await self.redis.zrange(_SCHEDULED, 0, 0, withscores=True)
        return first[0][1] if first else None
