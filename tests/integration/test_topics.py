"""Topics on the real broker keep the whole history (the log is the source of truth `switchboard replay` reads)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.topics import ARTICLES, INBOUND, TICKETS, Topics, ensure_topics

pytestmark = pytest.mark.integration

WATCHED = ("retention.ms", "retention.bytes", "cleanup.policy")


async def configs_of(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(WATCHED)) for name in names]
        )
    finally:
        await admin.close()
    return {
        name: {entry[0]: entry[1] for entry in entries}
        for response in responses
        for _code, _message, _kind, name, entries, *_ in response.resources
    }


async def test_topics_keep_every_record_forever_and_an_older_topic_is_brought_in_line(settings):
    topics = Topics(settings.topic_prefix)
    # A topic made by an earlier version: the broker's default retention (7 days), then deletion.
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topics.name(INBOUND), 8, 1, topic_configs={"retention.ms": str(7 * 24 * 3600 * 1000)})]
        )
    finally:
        await admin.close()

    created = await ensure_topics(settings.kafka_bootstrap, topics)

    assert topics.name(INBOUND) not in created and topics.name(TICKETS) in created
    names = [topics.name(INBOUND), topics.name(TICKETS), topics.dlq(TICKETS), topics.name(ARTICLES)]
    # The broker applies an accepted change through its metadata log, a moment after answering.
    async with asyncio.timeout(30):
        while (configs := await configs_of(settings.kafka_bootstrap, names))[names[0]]["retention.ms"] != "-1":
            await asyncio.sleep(0.2)
    for name in names[:3]:
        assert (configs[name]["retention.ms"], configs[name]["retention.bytes"]) == ("-1", "-1"), name
        assert configs[name]["cleanup.policy"] == "delete"
    # Each article event carries the whole article: the latest per slug is all replay needs.
    assert configs[topics.name(ARTICLES)]["cleanup.policy"] == "compact"
    # Again: nothing to create, nothing to change.
    assert await ensure_topics(settings.kafka_bootstrap, topics) == []
