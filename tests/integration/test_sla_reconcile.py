"""The SLA service's start-up reconciliation on the real broker and Redis: the open clocks are read and
brought in line with the config only when the config (or Switchboard's version) changed since they last were."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from services.sla.handler import TimerFiring, config_digest
from services.sla.timers import RECONCILED_KEY, TimerStore, clocks_key
from shared.publisher import Publisher
from shared.read_model import ReadModel
from shared.redis_client import connect_redis
from shared.topics import TICKETS, Topics, ensure_topics
from tests.support import decoded, read_topic
from tests.unit.test_sla_decide import CONFIG, created, rebuilt, ticket_sla_adapter

pytestmark = pytest.mark.integration


async def test_clocks_are_reconciled_once_per_config_and_a_restart_with_the_same_config_reads_none(settings):
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics)
    redis = connect_redis(settings.redis_url)
    publisher = Publisher(settings.kafka_bootstrap, client_id="test-sla-reconcile", registry=CollectorRegistry())
    await publisher.start()
    try:
        # A ticket's clocks stored, their deadline never announced in the read model: reconciling announces it.
        [(ticket_id, state)] = rebuilt([created("SB-1001")]).open_states().items()
        await redis.set(clocks_key(ticket_id), ticket_sla_adapter.dump_json(state))
        firing = TimerFiring(TimerStore(redis), ReadModel(redis), publisher, topics, CONFIG)

        await redis.set(RECONCILED_KEY, config_digest(CONFIG))
        assert await firing.reconcile(datetime.now(UTC)) == 0

        await redis.delete(RECONCILED_KEY)
        published = await firing.reconcile(datetime.now(UTC))
        assert published > 0
        assert await redis.get(RECONCILED_KEY) == config_digest(CONFIG)
        events = decoded(await read_topic(settings.kafka_bootstrap, topics.name(TICKETS), at_least=published))
        assert {(e["type"], e["reason"]) for e in events} == {("sla.deadline_set", "config changed")}
        assert len(events) == published

        # Started again with the same config: nothing is read, nothing published.
        assert await firing.reconcile(datetime.now(UTC)) == 0
    finally:
        await publisher.stop()
        await redis.aclose()
