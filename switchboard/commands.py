"""Agent commands issued from the command line (for admins and tests)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from services.intake.phone_calls import LoggedCall
from shared import i18n
from shared.contact_commands import contact_command, refusal, tag_command
from shared.events import AgentReply, CommandEnvelope
from shared.publisher import Outgoing, Publisher
from shared.read_model import ReadModel
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.topics import COMMANDS, Topics


async def send_command(
    settings: Settings, kind: type[CommandEnvelope], ticket_id: str, agent_id: str, **fields: Any
) -> uuid.UUID:
    """Publishes a command of `kind` on the commands topic once the ticket is known; returns its ID.

    Raises LookupError for an unknown ticket, pydantic's ValidationError for fields the command does not
    take. Whether the router applies it or refuses it (`command.rejected`) shows on the ticket's history.
    """
    command = kind(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), ticket_id=ticket_id, agent_id=agent_id, **fields
    )
    bootstrap, redis_url = settings.require_infra()
    redis = connect_redis(redis_url)
    try:
        if not await ReadModel(redis).ticket_exists(ticket_id):
            raise LookupError(f"no ticket {ticket_id}")
    finally:
        await redis.aclose()
    publisher = Publisher(bootstrap, client_id="switchboard-cli", registry=CollectorRegistry())
    await publisher.start()
    try:
        await publisher.publish(Outgoing.event(Topics(settings.topic_prefix).name(COMMANDS), ticket_id, command))
    finally:
        await publisher.stop()
    return command.event_id


async def send_contact_command(
    settings: Settings,
    agent_id: str,
    contact_id: str,
    into_contact_id: str | None = None,
    *,
    tags: tuple[list[str], list[str]] | None = None,
) -> uuid.UUID:
    """Publishes a merge of `contact_id` into `into_contact_id` (an unmerge of `contact_id` without it), or
    with `tags` (added, removed) a tag change of `contact_id`, on the commands topic, keyed by `contact_id`,
    once the router would accept it; returns its ID.

    Raises ValueError with the reason, in English, when it would not (`shared.contact_commands.refusal`);
    pydantic's ValidationError (a ValueError) for a tag of the wrong shape.
    """
    at = datetime.now(UTC)
    command = (
        contact_command(uuid.uuid4(), at, agent_id, contact_id, into_contact_id)
        if tags is None
        else tag_command(uuid.uuid4(), at, agent_id, contact_id, *tags)
    )
    bootstrap, redis_url = settings.require_infra()
    redis = connect_redis(redis_url)
    try:
        reason = await refusal(ReadModel(redis), contact_id, into_contact_id, tagging=tags is not None)
    finally:
        await redis.aclose()
    if reason is not None:
        raise ValueError(reason.text(i18n.texts("en")))
    publisher = Publisher(bootstrap, client_id="switchboard-cli", registry=CollectorRegistry())
    await publisher.start()
    try:
        await publisher.publish(Outgoing.event(Topics(settings.topic_prefix).name(COMMANDS), contact_id, command))
    finally:
        await publisher.stop()
    return command.event_id


async def log_phone_call(settings: Settings, call: LoggedCall) -> str:
    """Publishes a logged phone call as a new ticket's message on the inbound topic (as `/sb call` does);
    returns the ticket ID. Raises like `Intake.publish`; StateNotRestored while Redis lost its state."""
    from services.intake.core import Intake
    from services.intake.phone_calls import log_call
    from shared.config import load_config

    bootstrap, redis_url = settings.require_infra()
    redis = connect_redis(redis_url)
    publisher = Publisher(bootstrap, client_id="switchboard-cli", registry=CollectorRegistry())
    await publisher.start()
    try:
        intake = Intake(publisher, redis, load_config(settings.config), settings)
        return await log_call(intake, call, f"cli:{uuid.uuid4()}")
    finally:
        await publisher.stop()
        await redis.aclose()


async def send_reply(settings: Settings, ticket_id: str, text: str, agent_id: str) -> uuid.UUID:
    """Publishes a reply command once the ticket is known; returns the command's ID."""
    return await send_command(settings, AgentReply, ticket_id, agent_id, text=text)
