"""The consumer engine on the real broker, with a small handler written here: stopping a failing
partition while the others go on, resuming it, the DLQ with each record's origin, and commits that
wait for pending effects.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from shared.engine import BatchResult, ConsumerEngine, FailurePolicy, Record
from shared.events import AgentReply
from shared.publisher import Publisher
from shared.settings import Settings
from shared.topics import COMMANDS, Topics
from tests.support import committed_offsets, read_topic, topic_size

pytestmark = pytest.mark.integration

STOP_AFTER = 3
# Short, so that a stopped partition is tried again within the test; the backoff is tiny for the same reason.
STOPPED_RETRY_SECONDS = 1.0
POLICY = FailurePolicy(
    backoff_initial=0.01, backoff_max=0.05, stop_after=STOP_AFTER, stopped_retry_seconds=STOPPED_RETRY_SECONDS
)


class FakeHandler:
    """Records what it handled; fails batches holding a failing partition's records, refuses or defers as told."""

    def __init__(self) -> None:
        self.handled: list[Record[AgentReply]] = []
        self.failing_partitions: set[int] = set()
        # Batches holding only this partition's records that were tried (and failed or not).
        self.tries_alone: dict[int, int] = {}
        # Texts refused for good, with the reason.
        self.refuse: dict[str, str] = {}
        # Texts whose batch finishes later: the test completes the future.
        self.defer: set[str] = set()
        self.deferred: list[asyncio.Future[BatchResult]] = []

    async def handle(self, records: list[Record[Any]]) -> BatchResult:
        partitions = {record.partition for record in records}
        if len(partitions) == 1:
            [partition] = partitions
            self.tries_alone[partition] = self.tries_alone.get(partition, 0) + 1
        if failing := partitions & self.failing_partitions:
            raise RuntimeError(f"the dependency of partition {sorted(failing)} is missing")
        self.handled.extend(records)
        result = BatchResult(
            rejected=[(record, reason) for record in records if (reason := self.refuse.get(record.value.text))]
        )
        if any(record.value.text in self.defer for record in records):
            result.pending = asyncio.get_running_loop().create_future()
            self.deferred.append(result.pending)
        return result

    def texts(self, partition: int) -> list[str]:
        return [record.value.text for record in self.handled if record.partition == partition]


def command(text: str) -> bytes:
    return (
        AgentReply(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), ticket_id="SB-1001", text=text, agent_id="ana")
        .model_dump_json()
        .encode()
    )


class Commands:
    """The test's commands topic (two partitions) and its DLQ, and a producer writing to a chosen partition."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer):
        self.settings = settings
        self.producer = producer
        self.topics = Topics(settings.topic_prefix)
        self.name = self.topics.name(COMMANDS)
        self.dlq = self.topics.dlq(COMMANDS)

    async def write(self, partition: int, *values: bytes) -> None:
        for value in values:
            await self.producer.send_and_wait(self.name, value, key=b"SB-1001", partition=partition)

    async def committed(self, group_id: str) -> dict[int, int]:
        return await committed_offsets(self.settings.kafka_bootstrap, group_id, self.name)


@pytest.fixture
async def commands(settings: Settings) -> AsyncIterator[Commands]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    topics = Topics(settings.topic_prefix)
    try:
        # The settings fixture deletes them afterwards (they are registered topic names).
        await admin.create_topics([NewTopic(topics.name(COMMANDS), 2, 1), NewTopic(topics.dlq(COMMANDS), 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        yield Commands(settings, producer)
    finally:
        await producer.stop()


@asynccontextmanager
async def running_engine(commands: Commands, handler: FakeHandler, group_id: str) -> AsyncIterator[ConsumerEngine]:
    publisher = Publisher(commands.settings.kafka_bootstrap, client_id="test-engine", registry=CollectorRegistry())
    await publisher.start()
    engine = ConsumerEngine(
        name="test-engine",
        bootstrap=commands.settings.kafka_bootstrap,
        group_id=group_id,
        topics=commands.topics,
        specs=[COMMANDS],
        handler=handler,
        publisher=publisher,
        registry=CollectorRegistry(),
        policy=POLICY,
    )
    task = asyncio.create_task(engine.run(), name="test-engine")
    try:
        yield engine
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await publisher.stop()


async def eventually(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> None:
    """Waits until `condition()` (sync or async) holds; fails saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if asyncio.iscoroutine(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


def group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}engine-{uuid.uuid4().hex[:6]}"


async def test_a_failing_partition_stops_while_the_other_goes_on_and_resumes_once_it_recovers(settings, commands):
    group = group_id(settings)
    handler = FakeHandler()
    handler.failing_partitions.add(0)
    await commands.write(0, command("p0-a"), command("p0-b"), command("p0-c"))
    await commands.write(1, command("p1-a"), command("p1-b"), command("p1-c"))
    stopped_key = f"{commands.name}[0]"

    async with running_engine(commands, handler, group) as engine:
        await eventually(lambda: stopped_key in engine.health()["stopped_partitions"], "partition 0 stopped")
        tries_before_the_stop = handler.tries_alone[0]
        health = engine.health()
        await eventually(lambda: _committed_is(commands, group, {0: 0, 1: 3}), "partition 1 committed, partition 0 not")

        assert tries_before_the_stop == STOP_AFTER
        assert not health["ok"]
        stopped = health["stopped_partitions"][stopped_key]
        assert stopped["offset"] == 0 and "dependency of partition [0] is missing" in stopped["error"]
        assert handler.texts(1) == ["p1-a", "p1-b", "p1-c"] and handler.texts(0) == []

        # While partition 0 is stopped, partition 1 keeps flowing.
        await commands.write(1, command("p1-d"))
        await eventually(lambda: _committed_is(commands, group, {0: 0, 1: 4}), "the later record of partition 1")

        # Tried again after the pause: one more failure stops it again at once.
        await eventually(lambda: handler.tries_alone[0] > STOP_AFTER, "partition 0 tried again")
        await eventually(lambda: stopped_key in engine.health()["stopped_partitions"], "partition 0 stopped again")
        assert handler.tries_alone[0] == STOP_AFTER + 1

        handler.failing_partitions.clear()
        await eventually(lambda: _committed_is(commands, group, {0: 3, 1: 4}), "everything committed")
        await eventually(lambda: engine.health()["ok"], "health ok again")

    assert handler.texts(0) == ["p0-a", "p0-b", "p0-c"]
    assert handler.texts(1) == ["p1-a", "p1-b", "p1-c", "p1-d"]
    assert engine.health()["stopped_partitions"] == {}


async def test_invalid_and_refused_records_go_to_the_dlq_with_their_origin_and_the_rest_is_handled(settings, commands):
    group = group_id(settings)
    handler = FakeHandler()
    refused = "reply to unknown ticket SB-9999"
    handler.refuse["refuse me"] = refused
    invalid = b'{"type": "command.reply", "text": ""}'
    refused_value = command("refuse me")
    await commands.write(1, command("before"), invalid, refused_value, command("after"))

    async with running_engine(commands, handler, group):
        await eventually(lambda: _committed_is(commands, group, {0: 0, 1: 4}), "all four committed")
        dead = await read_topic(settings.kafka_bootstrap, commands.dlq, at_least=2)

    assert handler.texts(1) == ["before", "refuse me", "after"]
    by_value = {record.value: record for record in dead}
    assert set(by_value) == {invalid, refused_value} and len(dead) == 2
    for value, offset in ((invalid, 1), (refused_value, 2)):
        record = by_value[value]
        headers = {name: content.decode() for name, content in record.headers}
        assert record.key == b"SB-1001"
        assert headers["x-original-topic"] == commands.name
        assert headers["x-original-partition"] == "1"
        assert headers["x-original-offset"] == str(offset)
        assert headers["x-consumer-group"] == group
        assert datetime.fromisoformat(headers["x-failed-at"]).tzinfo is not None
    invalid_reason = dict(by_value[invalid].headers)["x-error-reason"].decode()
    assert invalid_reason.startswith("invalid message: ") and "agent_id" in invalid_reason
    assert dict(by_value[refused_value].headers)["x-error-reason"].decode() == refused


async def test_a_batch_with_pending_effects_is_committed_only_once_they_complete(settings, commands):
    group = group_id(settings)
    handler = FakeHandler()
    handler.defer.add("deliver slowly")

    async with running_engine(commands, handler, group):
        await commands.write(0, command("deliver slowly"))
        await eventually(lambda: handler.texts(0) == ["deliver slowly"], "the slow batch handled")
        await commands.write(0, command("quick"))
        await eventually(lambda: handler.texts(0)[1:] == ["quick"], "the next batch handled")
        await commands.write(0, command("quick again"))
        # Handling this one means the engine has been through settling the batch before it.
        await eventually(lambda: handler.texts(0)[2:] == ["quick again"], "a third batch handled")

        # The later batches are done, but nothing is committed past the unfinished one.
        assert await commands.committed(group) == {0: 0, 1: 0}
        assert await topic_size(settings.kafka_bootstrap, commands.dlq) == 0

        [deferred] = handler.deferred
        slow = handler.handled[0]
        deferred.set_result(BatchResult(rejected=[(slow, "delivery failed: channel_not_found")]))
        await eventually(lambda: _committed_is(commands, group, {0: 3, 1: 0}), "all three committed")
        # What the pending effects returned was published before the commit.
        [dead] = await read_topic(settings.kafka_bootstrap, commands.dlq, at_least=1)

    assert dead.value == slow.raw
    assert dict(dead.headers)["x-error-reason"] == b"delivery failed: channel_not_found"


async def _committed_is(commands: Commands, group: str, expected: dict[int, int]) -> bool:
    return await commands.committed(group) == expected
