"""Pacing calls to an API that allows N per second overall and M per second per key (token buckets)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up. Pure arithmetic over the time passed in."""

    rate: float
    burst: float
    # None until the first call: the bucket starts full. Negative: tokens promised to callers still waiting.
    tokens: float | None = None
    updated: float = 0.0

    def wait_for(self, now: float) -> float:
        """Takes a token and returns how long to wait until it is really there (0 when it is)."""
        if self.tokens is None:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class Pacing:
    def __init__(
        self,
        overall_per_second: float,
        per_key_per_second: float,
        *,
        burst_per_key: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.clock = clock
        self.overall = TokenBucket(overall_per_second, overall_per_second)
        self.per_key_rate = per_key_per_second
        self.burst_per_key = burst_per_key
        self.keys: dict[str, TokenBucket] = {}

    def reserve(self, key: str) -> float:
        """Takes a token of the overall and of `key`'s bucket; returns the seconds until both are there (0: now)."""
        now = self.clock()
        bucket = self.keys.setdefault(key, TokenBucket(self.per_key_rate, self.burst_per_key))
        delay = max(self.overall.wait_for(now), bucket.wait_for(now))
        if len(self.keys) > 10_000:
            # Chats idle long enough are full again: forgetting them changes nothing.
            self.keys = {name: kept for name, kept in self.keys.items() if now - kept.updated < 60}
        return delay

    async def wait(self, key: str) -> None:
        if (delay := self.reserve(key)) > 0:
            await asyncio.sleep(delay)
