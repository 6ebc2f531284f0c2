"""Releasing a quarantined message into a normal ticket (issue #16): an agent judged it a person's after all.

The quarantine keeps a spam post's whole would-be `InboundMessage` (its `original`); a release publishes
exactly that message to the inbound topic (its ticket ID is the one the sender was answered with, its
message ID the quarantined one, so the router's deduplication makes a repeated release harmless), then
`message.released` on the quarantine topic, which the quarantine's projection and `switchboard replay`
read: a second release finds it and publishes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from services.intake.core import PUBLISH_TIMEOUT_SECONDS, Intake
from shared.events import Attachment, InboundMessage, MessageReleased
from shared.ids import derived_id
from shared.publisher import Outgoing

logger = logging.getLogger(__name__)


class NotReleasable(ValueError):
    """The message cannot be released; the message says why (unknown: `unknown`, machine mail, original
    missing)."""

    def __init__(self, message: str, *, unknown: bool = False):
        super().__init__(message)
        self.unknown = unknown


@dataclass(frozen=True)
class Released:
    ticket_id: str
    # False: it had been released before (by `actor` then), and nothing was published now.
    now: bool
    actor: str


async def release(intake: Intake, message_id: UUID, actor: str) -> Released:
    """Publishes the quarantined message as an InboundMessage and records the release; returns its ticket.

    Raises NotReleasable; KafkaError (KafkaTimeoutError) when Kafka does not acknowledge in time (a
    retried release publishes the same message and the router keeps one); RedisError.
    """
    entry = await intake.quarantined.get(message_id)
    if entry is None:
        raise NotReleasable(f"no quarantined message {message_id}", unknown=True)
    if (earlier := entry["released"]) is not None:
        return Released(earlier["ticket_id"], False, earlier["actor"])
    if entry["kind"] != "spam" or entry["original"] is None:
        raise NotReleasable(f"{message_id} is {entry['kind']}: only messages judged spam can be released")
    try:
        raw = intake.attachments.read(Attachment.model_validate(entry["original"]))
    except FileNotFoundError:
        raise NotReleasable(f"the original of {message_id} is not under this DATA_DIR") from None
    inbound = InboundMessage.model_validate_json(raw)
    await intake.publish(inbound)
    event = MessageReleased(
        event_id=derived_id("released", str(message_id)),
        occurred_at=datetime.now(UTC),
        message_id=message_id,
        ticket_id=inbound.ticket_id,
        inbound_message_id=inbound.message_id,
        actor=actor,
        correlation_id=inbound.correlation_id,
    )
    record = Outgoing.event(intake.quarantine_topic, str(message_id), event)
    await intake.publisher.publish(record, timeout=PUBLISH_TIMEOUT_SECONDS)
    await intake.quarantined.apply([event])
    logger.info(
        "quarantined message released",
        extra={"message_id": str(message_id), "ticket_id": inbound.ticket_id, "actor": actor},
    )
    return Released(inbound.ticket_id, True, actor)
