"""The publisher on the real broker: a record published alone goes where a batch would put it, and
concurrent publishes (sharing the producer's batches) are each acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from shared.publisher import Outgoing, Publisher
from shared.settings import Settings
from shared.topics import INBOUND, Topics
from tests.support import read_topic

pytestmark = pytest.mark.integration

PARTITIONS = 8


@pytest.fixture
async def topic(settings: Settings) -> str:
    name = Topics(settings.topic_prefix).name(INBOUND)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()
    return name


@pytest.fixture
async def publisher(settings: Settings) -> AsyncIterator[Publisher]:
    publisher = Publisher(settings.kafka_bootstrap, client_id="test-publisher", registry=CollectorRegistry())
    await publisher.start()
    yield publisher
    await publisher.stop()


async def test_one_record_goes_to_the_partition_a_batch_puts_its_key_on(settings, topic, publisher):
    keys = [f"SB-{number}" for number in range(1001, 1041)]
    await publisher.publish_many([Outgoing(topic, key, b"in a batch", {"event-type": "test"}) for key in keys])
    for key in keys:
        await publisher.publish(Outgoing(topic, key, b"alone", {"event-type": "test"}))
    records = await read_topic(settings.kafka_bootstrap, topic, at_least=2 * len(keys))
    partitions: dict[bytes, set[int]] = {}
    for record in records:
        partitions.setdefault(record.key, set()).add(record.partition)
        assert dict(record.headers) == {"event-type": b"test"}
    assert all(len(used) == 1 for used in partitions.values())
    assert len(set().union(*partitions.values())) > 1


async def test_concurrent_publishes_are_each_acknowledged(settings, topic, publisher):
    count = 300
    await asyncio.gather(
        *(publisher.publish(Outgoing(topic, f"SB-{1001 + index % 7}", str(index).encode())) for index in range(count))
    )
    records = await read_topic(settings.kafka_bootstrap, topic, at_least=count)
    assert sorted(int(record.value) for record in records) == list(range(count))
