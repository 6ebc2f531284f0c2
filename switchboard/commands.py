"""Agent commands issued from the command line (for admins and tests)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from shared.broker import make_broker
from shared.events import AgentReply
from shared.read_model import ReadModel
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.topics import COMMANDS, Topics


async def send_reply(settings: Settings, ticket_id: str, text: str, agent_id: str) -> uuid.UUID:
    """Publishes a reply command once the ticket is known; returns the command's ID."""
    bootstrap, redis_url = settings.require_infra()
    redis = connect_redis(redis_url)
    try:
        if not await ReadModel(redis).ticket_exists(ticket_id):
            raise LookupError(f"no ticket {ticket_id}")
    finally:
        await redis.aclose()
    command = AgentReply(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), ticket_id=ticket_id, text=text, agent_id=agent_id
    )
    broker = make_broker(bootstrap, client_id="switchboard-cli", registry=CollectorRegistry())
    async with broker:
        await broker.start()
        await broker.publish(command, topic=Topics(settings.topic_prefix).name(COMMANDS), key=ticket_id.encode())
    return command.event_id
