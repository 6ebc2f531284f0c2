"""Agents' availability in Redis: a projection of `agent.availability_changed` events (the agents topic).

`/sb away` and `/sb back` publish the event; whoever publishes it applies it here too, and
`switchboard replay` rebuilds the same state from the agents topic. Assignment skips agents who are away.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from redis.asyncio import Redis

from shared.events import AgentAvailabilityChanged
from shared.read_model import agent_key

# Only a later change overwrites an earlier one (replayed or redelivered events arrive out of date).
_APPLY = """
for i = 1, #KEYS do
  local since = redis.call('HGET', KEYS[i], 'since')
  if not since or since <= ARGV[2 * i] then
    redis.call('HSET', KEYS[i], 'available', ARGV[2 * i - 1], 'since', ARGV[2 * i])
  end
end
return #KEYS
"""


class Availability:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._apply = redis.register_script(_APPLY)

    async def apply(self, events: Sequence[AgentAvailabilityChanged]) -> None:
        """Projects the events in one script call; an older change never overwrites a newer one."""
        if not events:
            return
        args: list[str] = []
        for event in events:
            # ISO 8601 in UTC compares in time order as text.
            args += ["1" if event.available else "0", event.occurred_at.astimezone(UTC).isoformat()]
        await self._apply(keys=[agent_key(event.agent_id) for event in events], args=args)

    async def available(self, agent_ids: Sequence[str]) -> dict[str, bool]:
        """Whether each agent is available; an agent never marked away is."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_id in agent_ids:
                pipe.hget(agent_key(agent_id), "available")
            flags = await pipe.execute()
        return {agent_id: flag != "0" for agent_id, flag in zip(agent_ids, flags, strict=True)}
