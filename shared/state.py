"""Whether Redis holds Switchboard's state: the guard that keeps a lost Redis from repeating ticket IDs.

Redis is a projection of the log. The key `sb:meta:restored` says the projection is there: it is
set on a fresh installation (the log is empty, so there is nothing to project) and by
`switchboard replay` once it has rebuilt everything. A Redis that lost its data (FLUSHDB, a
failover to an empty replica, a wiped volume) lacks it; then intake refuses to mint ticket IDs
(HTTP 503, SMTP 451: the sender retries) and consumers wait, until `switchboard replay` restores
the state — otherwise a new customer would get a ticket number the log already holds.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.topics import REGISTRY, Topics, partitions_of

logger = logging.getLogger(__name__)

RESTORED_KEY = "sb:meta:restored"
REPLAY_HINT = "Redis holds none of Switchboard's state but the log does: run `switchboard replay`"


class StateNotRestored(RedisError):
    """Redis lost Switchboard's state; intake answers "try again later" until replay restored it."""

    def __init__(self) -> None:
        super().__init__(REPLAY_HINT)


async def mark_restored(redis: Redis, how: str) -> None:
    await redis.set(RESTORED_KEY, f"{how} {datetime.now(UTC).isoformat()}")


async def forget_restored(redis: Redis) -> None:
    """Closes the gate (intake stops minting, consumers wait): replay is about to rebuild the state."""
    await redis.delete(RESTORED_KEY)


async def log_is_empty(bootstrap: str, topics: Topics) -> bool:
    """True when no topic of the registry holds a record yet (a new installation)."""
    partitions = [partition for spec in REGISTRY for partition in await partitions_of(bootstrap, topics.name(spec))]
    if not partitions:
        return True
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return not any((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def ensure_state(redis: Redis, bootstrap: str, topics: Topics) -> bool:
    """True when Redis holds the state (marking a new installation as such); False, with a log line, when not."""
    if await redis.exists(RESTORED_KEY):
        return True
    if await log_is_empty(bootstrap, topics):
        await redis.set(RESTORED_KEY, f"new installation {datetime.now(UTC).isoformat()}", nx=True)
        return True
    logger.error(REPLAY_HINT)
    return False


class StateGate:
    """Tells consumers whether they may go on; a positive answer is trusted for `ttl` seconds."""

    def __init__(self, redis: Redis, ttl: float = 1.0):
        self.redis = redis
        self.ttl = ttl
        self._open_until = 0.0

    async def is_open(self) -> bool:
        if time.monotonic() < self._open_until:
            return True
        if await self.redis.exists(RESTORED_KEY):
            self._open_until = time.monotonic() + self.ttl
            return True
        return False
