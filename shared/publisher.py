"""The one way every Switchboard process writes to Kafka.

A `Publisher` wraps one idempotent aiokafka producer (acks from every in-sync replica, so an
acknowledged record survives a broker failure). `publish_many` hands a whole batch to the producer
without awaiting each record, then awaits every acknowledgement: the producer packs the records
into few requests, and the order of records with the same key is kept (one partition, idempotent
producer with at most 5 requests in flight).
"""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel

# From this many records for one partition on, they go as a batch of their own (less work per record).
OWN_BATCH_FROM = 16
# A sender waits on the other end (an HTTP client, an SMTP peer): past this it is told to retry.
DEFAULT_PUBLISH_TIMEOUT_SECONDS = 10.0
# Records are bounded by intake (see shared.records); this leaves headroom over the largest.
MAX_REQUEST_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Outgoing:
    """One record to write: the topic's full name, the key (a ticket ID ...), the value and headers."""

    topic: str
    key: str | None
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def event(cls, topic: str, key: str | None, event: BaseModel, **extra_headers: str) -> Outgoing:
        """An event as JSON, with its type, ID and trace context in the record's headers."""
        # The model's serializer writes UTF-8 bytes (model_dump_json would decode them to encode them again).
        body, headers = event.__pydantic_serializer__.to_json(event), event_headers(event)
        if extra_headers:
            headers.update(extra_headers)
        return cls(topic, key, body, headers)


def event_headers(event: BaseModel) -> dict[str, str]:
    """What every record carries besides its body: its type and ID, and the trace it belongs to."""
    headers = {"event-type": str(getattr(event, "type", "")), "event-id": str(getattr(event, "event_id", ""))}
    if traceparent := getattr(event, "traceparent", None):
        headers["traceparent"] = traceparent
    return headers


class Publisher:
    def __init__(self, bootstrap: str, *, client_id: str, registry: CollectorRegistry, linger_ms: int = 2):
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        # Keyed records go where aiokafka's default partitioner (murmur2 of the key) puts them.
        self._partitioner = DefaultPartitioner()
        self._topic_partitions: dict[str, list[int]] = {}
        self._produced = Counter(
            "switchboard_produced_records_total", "Records written to Kafka", ["topic"], registry=registry
        )
        self._produced_by_topic: dict[str, Any] = {}

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=self.linger_ms,
            max_request_size=MAX_REQUEST_BYTES,
            max_batch_size=256 * 1024,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when the cluster answers a metadata request now (a real round trip)."""
        if self._producer is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._producer.client.fetch_all_metadata()
        except Exception:  # an unreachable cluster surfaces as a timeout or as a KafkaError
            return False
        return True

    async def publish_many(self, records: Sequence[Outgoing], timeout: float | None = None) -> None:
        """Returns once Kafka acknowledged every record; raises KafkaTimeoutError past `timeout` s.

        Records are handed over in order, so records with the same key keep their order.
        """
        if not records:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*await self.hand_over(records))
        except TimeoutError as error:
            raise KafkaTimeoutError(f"Kafka did not acknowledge within {timeout} s") from error

    async def hand_over(self, records: Sequence[Outgoing]) -> list[asyncio.Future[Any]]:
        """Hands the records to the producer in order and returns their acknowledgements, not awaited.

        Records handed over later go after these on their partitions, so a caller may go on and await
        the acknowledgements afterwards (as the consumer engine does, to overlap batches).
        """
        producer = self._require()
        futures = [future async for future in self._batches(producer, records)]
        for topic, count in Tally(record.topic for record in records).items():
            self._produced_on(topic).inc(count)
        return futures

    async def _batches(self, producer: AIOKafkaProducer, records: Sequence[Outgoing]) -> AsyncIterator[Awaitable[Any]]:
        """Hands the records over as one batch per partition (in order), the way `send` would place them."""
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, Outgoing]]] = {}
        # A ticket's events share its key; murmur2 is pure Python, so each key is hashed once per call.
        placements: dict[tuple[str, str], tuple[bytes, int]] = {}
        for record in records:
            if record.key is None:
                key, partition = None, await self._partition(producer, record.topic, None)
            elif (placed := placements.get((record.topic, record.key))) is not None:
                key, partition = placed
            else:
                key = record.key.encode()
                partition = await self._partition(producer, record.topic, key)
                placements[record.topic, record.key] = key, partition
            by_partition.setdefault((record.topic, partition), []).append((key, record))
        for (topic, partition), placed in by_partition.items():
            if len(placed) < OWN_BATCH_FROM:
                # A few records join the partition's open batch (lingering), as concurrent requests'
                # records should: a batch of their own would wait for the open one to drain first.
                for key, record in placed:
                    headers = [(name, value.encode()) for name, value in record.headers.items()]
                    yield await producer.send(topic, record.value, key=key, partition=partition, headers=headers)
                continue
            batch = producer.create_batch()
            for key, record in placed:
                headers = [(name, value.encode()) for name, value in record.headers.items()]
                if batch.append(key=key, value=record.value, timestamp=None, headers=headers) is None:
                    if batch.record_count():
                        yield await producer.send_batch(batch, topic, partition=partition)
                        batch = producer.create_batch()
                    if batch.append(key=key, value=record.value, timestamp=None, headers=headers) is None:
                        # Larger than a whole batch: on its own, as `send` would.
                        yield await producer.send(topic, record.value, key=key, partition=partition, headers=headers)
                        continue
            if batch.record_count():
                yield await producer.send_batch(batch, topic, partition=partition)

    async def _partition(self, producer: AIOKafkaProducer, topic: str, key: bytes | None) -> int:
        """Where aiokafka's default partitioner puts `key` among the topic's partitions, in order."""
        if (partitions := self._topic_partitions.get(topic)) is None:
            partitions = sorted(await producer.partitions_for(topic))
            self._topic_partitions[topic] = partitions
        return self._partitioner(key, partitions, partitions)

    async def publish(self, record: Outgoing, timeout: float | None = DEFAULT_PUBLISH_TIMEOUT_SECONDS) -> None:
        """`publish_many` of one record: it joins its partition's open batch, which concurrent callers share."""
        producer = self._require()
        headers = [(name, value.encode()) for name, value in record.headers.items()]
        key = None if record.key is None else record.key.encode()
        try:
            async with asyncio.timeout(timeout):
                partition = await self._partition(producer, record.topic, key)
                acknowledged = await producer.send(
                    record.topic, record.value, key=key, partition=partition, headers=headers
                )
                self._produced_on(record.topic).inc()
                await acknowledged
        except TimeoutError as error:
            raise KafkaTimeoutError(f"Kafka did not acknowledge within {timeout} s") from error

    def _produced_on(self, topic: str) -> Any:
        if (counter := self._produced_by_topic.get(topic)) is None:
            counter = self._produced_by_topic[topic] = self._produced.labels(topic)
        return counter

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            # As for an unreachable cluster: whoever waits on the other end is told to retry.
            raise KafkaConnectionError("the publisher is not running")
        return self._producer
