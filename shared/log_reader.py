"""Reading a topic's log from its beginning to where it ended when reading started, a batch at a time, never the
whole log in memory: for reports and exports (services/reports) and `switchboard replay`."""

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
    is not read). Use as `async with TopicLog(...) as log: total = log.total; async for record in log: ...`,
    or `async for records in log.batches()` for a partition's fetched records at a time.

    `batch_records` records at most per batch; `partition_fetch_bytes` and `fetch_bytes` bound what the
    consumer fetches ahead (per partition, per fetch)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        batch_records: int = BATCH_RECORDS,
        partition_fetch_bytes: int = PARTITION_FETCH_BYTES,
        fetch_bytes: int = FETCH_BYTES,
    ):
        self.bootstrap = bootstrap
        self.topic = topic
        self.batch_records = batch_records
        self.partition_fetch_bytes = partition_fetch_bytes
        self.fetch_bytes = fetch_bytes
        # The topic's partitions ([]: the topic does not exist) and its records in all, once open.
        self.partitions: list[TopicPartition] = []
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
            max_poll_records=self.batch_records,
            max_partition_fetch_bytes=self.partition_fetch_bytes,
            fetch_max_bytes=self.fetch_bytes,
        )
        await consumer.start()
        self._consumer = consumer
        self.partitions = partitions
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        self._ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        self.total = sum(self._ends[tp] - starts[tp] for tp in partitions)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def batches(self) -> AsyncIterator[list[LogRecord]]:
        """One partition's records of one fetch at a time, in offset order (possibly none: a fetch may begin
        past the end offset), until every partition reached its end offset."""
        consumer = self._consumer
        if consumer is None:
            return
        remaining = {tp for tp, end in self._ends.items() if end > 0 and await consumer.position(tp) < end}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=self.batch_records)
            for tp, records in fetched.items():
                batch = []
                for record in records:
                    if record.offset >= self._ends[tp]:
                        break
                    batch.append(LogRecord(self.topic, tp.partition, record.offset, record.value))
                yield batch
                if await consumer.position(tp) >= self._ends[tp]:
                    remaining.discard(tp)

    async def __aiter__(self) -> AsyncIterator[LogRecord]:
        async for batch in self.batches():
            for record in batch:
                yield record
