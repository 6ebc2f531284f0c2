"""Rebuilding the read model from Kafka, the source of truth."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from shared.events import ticket_event_adapter
from shared.read_model import ReadModel
from shared.redis_client import connect_redis
from shared.topics import TICKETS, Topics, partitions_of

logger = logging.getLogger(__name__)


async def replay_tickets(bootstrap: str, redis_url: str, topic_prefix: str = "") -> int:
    """Apply every event on the ticket topic, up to the offsets at the start; returns how many."""
    topic = Topics(topic_prefix).name(TICKETS)
    partitions = await partitions_of(bootstrap, topic)
    if not partitions:
        return 0
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    redis = connect_redis(redis_url)
    applied = 0
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end_offsets = await consumer.end_offsets(partitions)
        remaining = {partition for partition in partitions if end_offsets[partition] > 0}
        read_model = ReadModel(redis)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for partition, records in batches.items():
                events = []
                for record in records:
                    if record.offset >= end_offsets[partition]:
                        break
                    try:
                        events.append(ticket_event_adapter.validate_json(record.value))
                    except ValidationError as error:
                        logger.warning(
                            "skipped an invalid ticket event",
                            extra={"partition": record.partition, "offset": record.offset, "error": str(error)[:300]},
                        )
                await read_model.apply(events)
                applied += len(events)
                if await consumer.position(partition) >= end_offsets[partition]:
                    remaining.discard(partition)
    finally:
        await consumer.stop()
        await redis.aclose()
    return applied
