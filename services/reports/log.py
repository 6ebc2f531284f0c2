"""Reading the log for reports and exports: a topic's records from its beginning to where it ended when reading
started, one at a time, never the whole log in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.topics import partitions_of

# Records handed over per poll, and what the consumer fetches ahead at most (per partition, per fetch): a
# consumer's defaults (1 MB a partition, 50 MB a fetch) would buffer a small log whole.
BATCH_RECORDS = 500
PARTITION_FETCH_BYTES = 256 * 1024
FETCH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class LogRecord:
    """One record as Kafka holds it: the event's JSON (`value`) and where it is."""

    topic: str
    partition: int
    offset: int
    value: bytes


class TopicLog:
    """One topic's records up to its end offsets as `open()` found them (a snapshot: what arrives later
    is not read). Use as `async with TopicLog(...) as log: total = log.total; async for record in log: ...`."""

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap = bootstrap
        self.topic = topic
        self.total = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> TopicLog:
        partitions = await partitions_of(self.bootstrap, self.topic)
        if not partitions:
            return self
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            max_poll_records=BATCH_RECORDS,
            max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
            fetch_max_bytes=FETCH_BYTES,
        )
        await consumer.start()
        self._consumer = consumer
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        self._ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        self.total = sum(self._ends[tp] - starts[tp] for tp in partitions)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def __aiter__(self) -> AsyncIterator[LogRecord]:
        consumer = self._consumer
        if consumer is None:
            return
        remaining = {tp for tp, end in self._ends.items() if end > 0 and await consumer.position(tp) < end}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=BATCH_RECORDS)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= self._ends[tp]:
                        break
                    yield LogRecord(self.topic, tp.partition, record.offset, record.value)
                if await consumer.position(tp) >= self._ends[tp]:
                    remaining.discard(tp)
