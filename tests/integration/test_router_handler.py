"""The router's handler, the same test in memory (TestKafkaBroker) and on the real broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import anyio
import pytest
from faststream.kafka import TestKafkaBroker

from services.router.app import create_app
from shared.events import InboundMessage, Sender
from shared.read_model import ReadModel
from shared.redis_client import connect_redis
from shared.topics import INBOUND, Topics

pytestmark = pytest.mark.integration


def inbound(ticket_id: str, email: str) -> InboundMessage:
    message_id = uuid.uuid4()
    now = datetime.now(UTC)
    return InboundMessage(
        event_id=message_id,
        occurred_at=now,
        ticket_id=ticket_id,
        message_id=message_id,
        channel="form",
        channel_message_id=str(message_id),
        source="contact",
        sender=Sender(name="Ana", email=email),
        subject="Cannot log in",
        text="help",
        received_at=now,
    )


async def handled(handler, times: int, timeout: float = 30) -> None:
    with anyio.fail_after(timeout):
        while handler.mock is None or handler.mock.call_count < times:
            await anyio.sleep(0.05)


@pytest.mark.parametrize("real_broker", [False, True], ids=["in-memory", "kafka"])
async def test_inbound_message_becomes_an_assigned_ticket(settings, real_broker):
    app = create_app(settings)
    broker = app.broker
    topic = Topics(settings.topic_prefix).name(INBOUND)
    [subscriber] = [candidate for candidate in broker.subscribers if topic in {t.name for t in candidate.topics}]
    handler = subscriber.calls[0].handler
    redis = connect_redis(settings.redis_url)
    try:
        async with TestKafkaBroker(broker, with_real=real_broker) as test_broker:
            message = inbound("SB-2001", "ana@example.com")
            await test_broker.publish(message, topic=topic, key=b"SB-2001")
            # The same message again (a redelivery) changes nothing.
            await test_broker.publish(message, topic=topic, key=b"SB-2001")
            await handled(handler, times=2)
        ticket = await ReadModel(redis).ticket("SB-2001")
        assert ticket is not None
        assert ticket["assignee"]["agent_id"] == "ana"
        assert ticket["contact"]["emails"] == ["ana@example.com"]
        assert len(ticket["messages"]) == 1
    finally:
        await redis.aclose()
