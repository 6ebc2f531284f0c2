"""The consumer engine every Switchboard consumer runs on: batched, ordered, at-least-once.

Shape, after getsentry/arroyo:
- records are fetched in batches (`getmany`); a batch goes to the service's `BatchHandler` whole,
  each partition's records in offset order, so the records of one ticket (one key → one partition)
  are handled in order; partitions are interleaved by record time, so that a service reading two
  topics keyed alike (the router: inbound messages and agents' commands) sees a ticket's message
  and command in the order they happened. The range assignor gives one instance the same partition
  numbers of every topic it reads, so one ticket's messages and commands meet in one instance;
- a record that cannot be decoded into its topic's schema is `InvalidMessage`: it goes to the
  topic's DLQ with its origin (topic, partition, offset, group) and the reason; so does a record the
  handler refuses for good (`BatchResult.rejected`);
- the handler reads the state the batch needs, decides in pure code, writes its effects, and
  returns the records to publish; the engine publishes them all without awaiting each, awaits every
  acknowledgement, and only then commits the batch's offsets;
- any other exception is transient: the batch is retried (a batch of several partitions is split
  so that one bad partition cannot hold up the others) with backoff; a run of `stop_after`
  consecutive failures stops that partition (paused, not committed past the failing record) and
  `health()` reports it, which turns `/readyz` red — an ordered ticket stream is never dumped into
  the DLQ by a bad deploy or a missing dependency. A stopped partition is tried again every
  `stopped_retry_seconds`; outages of our own Kafka or Redis are waited out without counting.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, KafkaTimeoutError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.publisher import Outgoing, Publisher
from shared.state import REPLAY_HINT, StateGate
from shared.topics import Topics, TopicSpec

logger = logging.getLogger(__name__)

T = TypeVar("T")

STATE_WAIT = "Redis state (run `switchboard replay`)"
# How long a rebalance or a shutdown waits for pending effects before leaving them to be redone.
REVOKE_SETTLE_SECONDS = 20.0
SHUTDOWN_SETTLE_SECONDS = 10.0
CONSUMER_STOP_SECONDS = 5.0


def is_infrastructure_outage(error: BaseException) -> bool:
    """An outage of our own Kafka or Redis: waited out, never a reason to stop or dead-letter.

    Failures of the outside world (Slack, the SMTP relay, Telegram) are not: they are the
    notifier's to retry in its own delivery queues.
    """
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return True
    return isinstance(error, KafkaError) and (error.retriable or isinstance(error, KafkaTimeoutError))


class InvalidMessage(Exception):
    """A record that no retry can ever process (it does not match its topic's schema ...)."""


@dataclass(frozen=True)
class Record(Generic[T]):
    """A consumed record with its decoded value; `timestamp` is the record's Kafka time (UTC)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp: datetime
    value: T
    raw: bytes = field(repr=False, default=b"")
    headers: tuple[tuple[str, bytes], ...] = field(repr=False, default=())

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass
class BatchResult:
    """What a handler made of a batch: records to publish, and records refused for good (→ DLQ).

    `after_publish`, when given, runs once Kafka acknowledged every record and before the offsets
    are committed: state that must never run ahead of the log (a projection of the published
    events) is written there. If it fails, the whole batch is handled again.
    """

    publish: list[Outgoing] = field(default_factory=list)
    rejected: list[tuple[Record[Any], str]] = field(default_factory=list)
    after_publish: Callable[[], Awaitable[None]] | None = None
    # Without `after_publish`, the engine goes on with the next batch while Kafka acknowledges this
    # one's records; `on_published` (no I/O) runs once they are acknowledged.
    on_published: Callable[[], None] | None = None
    # Runs (no I/O) once `publish` is in the producer's hands, before the next batch is handled: from
    # then on, a failure ends the engine instead of handling this batch again.
    on_handed_over: Callable[[], None] | None = None
    # Effects that finish later (deliveries to the outside world): the engine goes on with later
    # batches and commits this one once `pending` is done and what it returns is published.
    # Batches are committed in order, so an offset is never committed past unfinished work.
    pending: asyncio.Future[BatchResult] | None = None


class BatchHandler(Protocol):
    async def handle(self, records: list[Record[Any]]) -> BatchResult:
        """Handles the batch (in order) or raises; raising means nothing of it is committed."""
        ...


@dataclass(frozen=True)
class FailurePolicy:
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    # Consecutive failures of one partition's batch after which that partition stops.
    stop_after: int = 6
    stopped_retry_seconds: float = 30.0

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_initial * 2 ** max(0, attempt - 1))


@dataclass
class _InFlight:
    """A handled batch whose offsets wait to be committed (in order) until its pending effects are done."""

    offsets: dict[TopicPartition, int]
    pending: asyncio.Future[None] | None
    records: int


@dataclass
class _Stopped:
    since: float
    error: str
    offset: int


class _Metrics:
    def __init__(self, registry: CollectorRegistry, group_id: str):
        labels = ["group", "topic"]
        self.group_id = group_id
        self.consumed = Counter("switchboard_consumed_records_total", "Records consumed", labels, registry=registry)
        self.dead_lettered = Counter(
            "switchboard_dead_lettered_messages_total", "Records sent to a dead-letter topic", labels, registry=registry
        )
        self.batch_seconds = Histogram(
            "switchboard_batch_seconds",
            "Time to handle, publish and commit one batch",
            ["group"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_records = Histogram(
            "switchboard_batch_records",
            "Records per batch",
            ["group"],
            registry=registry,
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
        )
        self.failures = Counter("switchboard_batch_failures_total", "Batches that failed", ["group"], registry=registry)
        self.lag = Gauge(
            "switchboard_consumer_lag",
            "Records behind the end of the partition",
            [*labels, "partition"],
            registry=registry,
        )
        self.stopped = Gauge(
            "switchboard_stopped_partitions", "Partitions stopped by failures", ["group"], registry=registry
        )


class ConsumerEngine:
    def __init__(
        self,
        *,
        name: str,
        bootstrap: str,
        group_id: str,
        topics: Topics,
        specs: Sequence[TopicSpec],
        handler: BatchHandler,
        publisher: Publisher,
        registry: CollectorRegistry,
        max_batch: int = 500,
        max_in_flight: int = 10_000,
        policy: FailurePolicy = FailurePolicy(),
        gate: StateGate | None = None,
    ):
        self.name = name
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.topics = topics
        self.handler = handler
        self.publisher = publisher
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.policy = policy
        self.gate = gate
        self._adapters: dict[str, TypeAdapter[Any]] = {topics.name(spec): spec.adapter() for spec in specs}
        self._known_types: dict[str, frozenset[str]] = {topics.name(spec): spec.event_types() for spec in specs}
        self._metrics = _Metrics(registry, group_id)
        self._consumer: AIOKafkaConsumer | None = None
        self._stopped: dict[TopicPartition, _Stopped] = {}
        self._failures: dict[TopicPartition, int] = {}
        self._waiting_for: str | None = None
        self._busy = asyncio.Lock()
        self._running = False
        self._in_flight: deque[_InFlight] = deque()
        # Handed over when the last batch with pending effects has handed its records to the producer.
        self._handed_over: asyncio.Future[None] | None = None

    # --- state for /readyz -------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """`ok` is False while a partition is stopped, an outage is waited out, or nothing runs."""
        stopped = {
            f"{tp.topic}[{tp.partition}]": {
                "offset": state.offset,
                "error": state.error,
                "since_s": round(time.monotonic() - state.since, 1),
            }
            for tp, state in self._stopped.items()
        }
        problems = []
        if not self._running:
            problems.append("not consuming")
        if self._waiting_for:
            problems.append(f"waiting for {self._waiting_for}")
        return {"ok": not problems and not stopped, "problems": problems, "stopped_partitions": stopped}

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Consumes until cancelled."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=self.name,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.max_batch,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # Partition n of every subscribed topic to the same instance: topics keyed by ticket ID
            # put a ticket in the same partition number, so its records meet in one instance.
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        consumer.subscribe(list(self._adapters), listener=_Rebalance(self))
        await consumer.start()
        self._consumer = consumer
        self._running = True
        try:
            while True:
                await self._resume_due_partitions(consumer)
                if self.gate is not None and not await self._gate_open():
                    continue
                try:
                    fetched = await consumer.getmany(timeout_ms=200, max_records=self.max_batch)
                except KafkaError as error:
                    await self._wait_out("kafka", error, attempt=1)
                    continue
                async with self._busy:
                    if fetched:
                        await self._handle_fetched(consumer, fetched)
                        self._update_lag(consumer, fetched)
                    await self._settle(consumer)
        finally:
            self._running = False
            self._consumer = None
            try:
                # Whatever finishes soon is committed; the rest is handled again after the restart.
                async with asyncio.timeout(SHUTDOWN_SETTLE_SECONDS):
                    await self._settle(consumer, wait=True)
            except (TimeoutError, asyncio.CancelledError, KafkaError):
                pass
            try:
                # Leaving the group waits for the coordinator's answer, up to the request timeout (40 s)
                # when it is not ready (a group still joining): the group times a silent member out anyway.
                async with asyncio.timeout(CONSUMER_STOP_SECONDS):
                    await consumer.stop()
            except TimeoutError:
                logger.warning("consumer did not leave its group in time; the group will time it out")

    async def _handle_fetched(self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[Any]]) -> None:
        # A partition stopped meanwhile (e.g. by the previous batch) may still have had records prefetched.
        fetched = {tp: records for tp, records in fetched.items() if records and tp not in self._stopped}
        if not fetched:
            return
        started = time.perf_counter()
        if not await self._process(consumer, fetched):
            # Split: each partition on its own, so one failing partition holds up no other.
            for tp, records in fetched.items():
                await self._process(consumer, {tp: records})
        self._metrics.batch_seconds.labels(self.group_id).observe(time.perf_counter() - started)

    async def _process(self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[Any]]) -> bool:
        """Handles, publishes and commits; returns False when a multi-partition batch should be split."""
        decoded, invalid = self._decode(fetched)
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self.handler.handle(decoded)
                dead_letters = [self._dead_letter(record, reason) for record, reason in [*invalid, *result.rejected]]
                if result.after_publish is not None:
                    await self._publish([*result.publish, *dead_letters])
                    await result.after_publish()
                    acknowledged: list[asyncio.Future[Any]] = []
                else:
                    acknowledged = await self._hand_over([*result.publish, *dead_letters])
                if result.on_handed_over is not None:
                    result.on_handed_over()
                break
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if is_infrastructure_outage(error):
                    await self._wait_out(_outage_of(error), error, attempt)
                    continue
                self._metrics.failures.labels(self.group_id).inc()
                if len(fetched) > 1:
                    logger.warning(
                        "batch failed; retrying its partitions one by one",
                        extra={"group": self.group_id, "error": repr(error)[:500]},
                    )
                    return False
                [tp] = fetched
                failures = self._failures.get(tp, 0) + 1
                self._failures[tp] = failures
                if failures >= self.policy.stop_after:
                    self._stop(consumer, tp, fetched[tp][0].offset, error)
                    return True
                delay = self.policy.backoff(failures)
                logger.warning(
                    "batch failed, will retry",
                    extra={
                        "group": self.group_id,
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "offset": fetched[tp][0].offset,
                        "attempt": failures,
                        "retry_in_s": delay,
                        "error": repr(error)[:500],
                    },
                    exc_info=failures == 1,
                )
                await asyncio.sleep(delay)
        self._waiting_for = None
        for tp in fetched:
            self._failures.pop(tp, None)
        for record, _ in [*invalid, *result.rejected]:
            self._metrics.dead_lettered.labels(self.group_id, record.topic).inc()
        completion = None
        if acknowledged or result.pending is not None or result.on_published is not None:
            # What pending effects publish is handed over in batch order, once the previous batch's is.
            previous, self._handed_over = self._handed_over, asyncio.get_running_loop().create_future()
            completion = asyncio.ensure_future(self._completion(acknowledged, result, previous, self._handed_over))
        self._in_flight.append(
            _InFlight(
                {tp: records[-1].offset + 1 for tp, records in fetched.items()},
                completion,
                sum(len(records) for records in fetched.values()),
            )
        )
        await self._settle(consumer, wait=sum(entry.records for entry in self._in_flight) > self.max_in_flight)
        for tp, records in fetched.items():
            self._metrics.consumed.labels(self.group_id, tp.topic).inc(len(records))
        self._metrics.batch_records.labels(self.group_id).observe(sum(len(records) for records in fetched.values()))
        return True

    def _decode(self, fetched: dict[TopicPartition, list[Any]]) -> tuple[list[Record[Any]], list[tuple[Record, str]]]:
        partitions: list[list[Record[Any]]] = []
        invalid: list[tuple[Record[Any], str]] = []
        for tp, records in fetched.items():
            adapter = self._adapters[tp.topic]
            decoded: list[Record[Any]] = []
            for raw in records:
                try:
                    value = adapter.validate_json(raw.value or b"")
                except ValidationError as error:
                    if _is_newer_event_type(raw.value, self._known_types[tp.topic]):
                        # Written by a newer version of another service: not this one's to handle.
                        continue
                    invalid.append((_record(raw, None), f"invalid message: {_summarise(error)}"))
                    continue
                decoded.append(_record(raw, value))
            partitions.append(decoded)
        # Each partition stays in offset order (merge never reorders one input), whatever its timestamps.
        return list(heapq.merge(*partitions, key=lambda record: record.timestamp)), invalid

    async def _gate_open(self) -> bool:
        """Whether Redis holds the state our decisions read; while it does not (replay runs), wait."""
        try:
            if await self.gate.is_open():
                if self._waiting_for == STATE_WAIT:
                    self._waiting_for = None
                return True
        except (RedisConnectionError, RedisTimeoutError) as error:
            await self._wait_out("redis", error, attempt=3)
            return False
        if self._waiting_for != STATE_WAIT:
            logger.warning("waiting: %s", REPLAY_HINT, extra={"group": self.group_id})
        self._waiting_for = STATE_WAIT
        await asyncio.sleep(1.0)
        return False

    async def _settle(
        self, consumer: AIOKafkaConsumer, *, wait: bool = False, only: set[TopicPartition] | None = None
    ) -> None:
        """Commits the handled batches whose effects are done, oldest first.

        With `wait`, waits for the oldest pending batch (all of them when `only` names partitions
        that must be settled, as before a rebalance). Pending work that failed ends the engine: its
        records are handled again after a restart.
        """
        offsets: dict[TopicPartition, int] = {}
        while self._in_flight:
            head = self._in_flight[0]
            if head.pending is not None and not head.pending.done():
                must_wait = wait and (only is None or any(tp in only for tp in head.offsets))
                if not must_wait:
                    break
            if head.pending is not None:
                await head.pending
            offsets.update(head.offsets)
            self._in_flight.popleft()
            if wait and only is None:
                wait = sum(entry.records for entry in self._in_flight) > self.max_in_flight
        await self._commit(consumer, offsets)

    async def _completion(
        self,
        acknowledged: list[asyncio.Future[Any]],
        result: BatchResult,
        previous: asyncio.Future[None] | None,
        handed_over: asyncio.Future[None],
    ) -> None:
        """Waits for a batch's acknowledgements and pending effects, then publishes what those return (after
        the previous batch's, `previous`; `handed_over` says when this one's are) and waits for Kafka's
        acknowledgement. It runs beside the loop, which goes on fetching and handling meanwhile."""
        try:
            # A record Kafka finally refused (the producer retried it until its timeout) ends the engine:
            # its batch is handled again after the restart.
            await asyncio.gather(*acknowledged)
            if result.on_published is not None:
                result.on_published()
            later = await result.pending if result.pending is not None else BatchResult()
            if previous is not None:
                await previous
            dead_letters = [self._dead_letter(record, reason) for record, reason in later.rejected]
            published = await self._hand_over([*later.publish, *dead_letters]) if later.publish or dead_letters else []
        finally:
            if not handed_over.done():
                handed_over.set_result(None)
        await asyncio.gather(*published)
        for record, _ in later.rejected:
            self._metrics.dead_lettered.labels(self.group_id, record.topic).inc()

    async def _hand_over(self, records: list[Outgoing]) -> list[asyncio.Future[Any]]:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.publisher.hand_over(records)
            except KafkaError as error:
                await self._wait_out("kafka", error, attempt)

    async def _publish(self, records: list[Outgoing]) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.publisher.publish_many(records, timeout=30)
                return
            except KafkaError as error:
                # Effects are written and idempotent by event ID: publishing again is safe.
                await self._wait_out("kafka", error, attempt)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        owned = consumer.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
        except (CommitFailedError, IllegalStateError) as error:
            # The partitions moved to another instance meanwhile: it handles these records again,
            # which our idempotent effects make harmless.
            logger.warning("commit refused after a rebalance", extra={"group": self.group_id, "error": repr(error)})

    def _dead_letter(self, record: Record[Any], reason: str) -> Outgoing:
        logger.warning(
            "message dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason[:500],
            },
        )
        return Outgoing(
            self.topics.dlq(record.topic),
            record.key,
            record.raw,
            {
                "x-original-topic": record.topic,
                "x-original-partition": str(record.partition),
                "x-original-offset": str(record.offset),
                "x-consumer-group": self.group_id,
                "x-error-reason": reason[:2000],
                "x-failed-at": datetime.now(UTC).isoformat(),
            },
        )

    # --- stopping and resuming partitions ----------------------------------------------------

    def _stop(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, error: BaseException) -> None:
        logger.error(
            "partition stopped after repeated failures; /readyz is red until it recovers",
            extra={
                "group": self.group_id,
                "topic": tp.topic,
                "partition": tp.partition,
                "offset": offset,
                "error": repr(error)[:1000],
            },
        )
        self._stopped[tp] = _Stopped(time.monotonic(), repr(error)[:500], offset)
        self._metrics.stopped.labels(self.group_id).set(len(self._stopped))
        if tp in consumer.assignment():
            consumer.pause(tp)
            consumer.seek(tp, offset)

    async def _resume_due_partitions(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        for tp, state in list(self._stopped.items()):
            if now - state.since < self.policy.stopped_retry_seconds:
                continue
            # Retried once per period; a success clears it, a failure stops it again at once.
            self._failures[tp] = self.policy.stop_after - 1
            del self._stopped[tp]
            if tp in consumer.assignment():
                consumer.resume(tp)
        self._metrics.stopped.labels(self.group_id).set(len(self._stopped))

    def _drop(self, partitions: set[TopicPartition]) -> None:
        """Gives up committing `partitions` (their new owner handles those records again)."""
        for entry in self._in_flight:
            for tp in partitions:
                entry.offsets.pop(tp, None)

    def _forget(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self._stopped.pop(tp, None)
            self._failures.pop(tp, None)
        self._metrics.stopped.labels(self.group_id).set(len(self._stopped))

    async def _wait_out(self, what: str, error: BaseException, attempt: int) -> None:
        self._waiting_for = what
        delay = self.policy.backoff(attempt)
        logger.warning(
            f"{what} unavailable, waiting", extra={"group": self.group_id, "retry_in_s": delay, "error": repr(error)}
        )
        await asyncio.sleep(delay)

    def _update_lag(self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[Any]]) -> None:
        for tp, records in fetched.items():
            highwater = consumer.highwater(tp)
            if highwater is not None and records:
                self._metrics.lag.labels(self.group_id, tp.topic, str(tp.partition)).set(
                    max(0, highwater - records[-1].offset - 1)
                )


class _Rebalance(ConsumerRebalanceListener):
    """Lets the batch in hand finish (and commit) before its partitions move to another instance."""

    def __init__(self, engine: ConsumerEngine):
        self.engine = engine

    async def on_partitions_revoked(self, revoked: Any) -> None:
        engine = self.engine
        async with engine._busy:
            if engine._consumer is not None:
                try:
                    async with asyncio.timeout(REVOKE_SETTLE_SECONDS):
                        await engine._settle(engine._consumer, wait=True, only=set(revoked))
                except TimeoutError:
                    engine._drop(set(revoked))
            engine._forget(list(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.engine._forget(list(assigned))


def _outage_of(error: BaseException) -> str:
    return "redis" if isinstance(error, RedisConnectionError | RedisTimeoutError) else "kafka"


def _record(raw: Any, value: Any) -> Record[Any]:
    key = raw.key.decode("utf-8", "replace") if isinstance(raw.key, bytes) else raw.key
    return Record(
        topic=raw.topic,
        partition=raw.partition,
        offset=raw.offset,
        key=key,
        timestamp=datetime.fromtimestamp(raw.timestamp / 1000, UTC),
        value=value,
        raw=raw.value or b"",
        headers=tuple(raw.headers or ()),
    )


def _is_newer_event_type(value: bytes | None, known: frozenset[str]) -> bool:
    try:
        document = json.loads(value or b"")
    except ValueError:
        return False
    kind = document.get("type") if isinstance(document, dict) else None
    return isinstance(kind, str) and "." in kind and kind not in known


def _summarise(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in detail['loc']) or '(body)'}: {detail['msg']}"
        for detail in error.errors()[:10]
    )
