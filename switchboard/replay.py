"""Rebuilding the Redis projections from Kafka, the source of truth."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from pydantic import TypeAdapter, ValidationError

from shared.events import MessageQuarantined, ticket_event_adapter
from shared.quarantine import Quarantine
from shared.read_model import ReadModel
from shared.redis_client import connect_redis
from shared.topics import QUARANTINE, TICKETS, Topics, partitions_of

logger = logging.getLogger(__name__)

_quarantine_adapter: TypeAdapter[MessageQuarantined] = TypeAdapter(MessageQuarantined)


async def replay_tickets(bootstrap: str, redis_url: str, topic_prefix: str = "") -> int:
    """Apply every event on the ticket topic, up to the offsets at the start; returns how many."""
    redis = connect_redis(redis_url)
    try:
        return await _replay(
            bootstrap, Topics(topic_prefix).name(TICKETS), ticket_event_adapter, ReadModel(redis).apply
        )
    finally:
        await redis.aclose()


async def replay_quarantine(bootstrap: str, redis_url: str, topic_prefix: str = "") -> int:
    """Apply every event on the quarantine topic, up to the offsets at the start; returns how many."""
    redis = connect_redis(redis_url)
    try:
        return await _replay(
            bootstrap, Topics(topic_prefix).name(QUARANTINE), _quarantine_adapter, Quarantine(redis).apply
        )
    finally:
        await redis.aclose()


async def _replay(
    bootstrap: str, topic: str, adapter: TypeAdapter[Any], apply: Callable[[Sequence[Any]], Awaitable[None]]
) -> int:
    partitions = await partitions_of(bootstrap, topic)
    if not partitions:
        return 0
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    applied = 0
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end_offsets = await consumer.end_offsets(partitions)
        remaining = {partition for partition in partitions if end_offsets[partition] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for partition, records in batches.items():
                events = []
                for record in records:
                    if record.offset >= end_offsets[partition]:
                        break
                    try:
                        events.append(adapter.validate_json(record.value))
                    except ValidationError as error:
                        logger.warning(
                            "skipped an invalid event",
                            extra={
                                "topic": topic,
                                "partition": record.partition,
                                "offset": record.offset,
                                "error": str(error)[:300],
                            },
                        )
                await apply(events)
                applied += len(events)
                if await consumer.position(partition) >= end_offsets[partition]:
                    remaining.discard(partition)
    finally:
        await consumer.stop()
    return applied
