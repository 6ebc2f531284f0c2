"""The rate limits' counters in Redis: one script per request checks and takes every counter at once.

What is counted and what a wait means are decided in services.intake.limits; this only runs GCRA on
Redis's clock (the one every intake-http instance shares). Counters expire once full again: no
state outlives its limit, so `switchboard replay` has nothing to rebuild (README "Operations").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from services.intake.limits import LimitCheck, Scope

# KEYS: the counters (each a TAT, ms). ARGV: per counter its emission interval and capacity (ms).
# All within their capacity: every TAT moves on one interval; else nothing changes and the answer
# is {0, the longest wait in ms, the index (1-based) of the counter that waits longest}.
_GCRA = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local next_tats = {}
local wait, worst = 0, 0
for i, key in ipairs(KEYS) do
  local interval, capacity = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local next_tat = tat + interval
  local over = next_tat - now - capacity
  if over > wait then wait, worst = over, i end
  next_tats[i] = next_tat
end
if wait > 0 then return {0, wait, worst} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, next_tats[i], 'PX', next_tats[i] - now)
end
return {1, 0, 0}
"""


@dataclass(frozen=True)
class Verdict:
    """Within every limit, or not: then the ms to wait and the scope of the counter that is full."""

    allowed: bool
    wait_ms: int = 0
    scope: Scope | None = None


ALLOWED = Verdict(True)


class RateLimiter:
    def __init__(self, redis: Redis):
        self._take = redis.register_script(_GCRA)

    async def take(self, checks: Sequence[LimitCheck]) -> Verdict:
        """Takes one request from every counter if all have room; raises RedisError."""
        if not checks:
            return ALLOWED
        args = [value for check in checks for value in (check.interval_ms, check.capacity_ms)]
        allowed, wait_ms, worst = await self._take(keys=[check.key for check in checks], args=args)
        if allowed:
            return ALLOWED
        return Verdict(False, int(wait_ms), checks[int(worst) - 1].scope)
