"""What every intake channel shares: resolving the ticket, storing attachments, publishing.

A channel adapter verifies and parses its input, then calls `Intake.resolve_ticket` and
`Intake.publish` (or, for input that belongs on no ticket, `Intake.quarantine`); it acknowledges its
channel only after that returned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, datetime
from uuid import UUID

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from services.intake.records import MAX_RECORD_BYTES, fit_to_record
from services.intake.ticket_ids import Resolution, TicketIds
from shared.attachments import AttachmentStore
from shared.config import DeskConfig
from shared.events import InboundMessage, MessageQuarantined
from shared.ids import derived_id
from shared.process import ServiceProcess
from shared.publisher import Outgoing, Publisher
from shared.quarantine import Quarantine
from shared.settings import Settings
from shared.topics import DLQ_SUFFIX, INBOUND, QUARANTINE, Topics

logger = logging.getLogger(__name__)

# A sender waits on the other end: past this, it is told to try again (HTTP 503, SMTP 451).
PUBLISH_TIMEOUT_SECONDS = 10.0


def with_refusals(text: str, refusals: Sequence[str]) -> str:
    """The message's text followed by one line `[attachment refused: <reason>]` per refused file, so that
    the agent knows something was sent; the text unchanged when nothing was refused."""
    return "\n".join([text, *(f"[attachment refused: {reason}]" for reason in refusals)])


class Intake:
    def __init__(
        self,
        publisher: Publisher,
        redis: Redis,
        config: DeskConfig,
        settings: Settings,
        registry: CollectorRegistry | None = None,
    ):
        self.publisher = publisher
        self.redis = redis
        self.config = config
        self.settings = settings
        self.ticket_ids = TicketIds(redis, config.ticket_prefix)
        self.attachments = AttachmentStore(settings.data_dir / "attachments")
        self.quarantined = Quarantine(redis)
        topics = Topics(settings.topic_prefix)
        self.inbound_topic = topics.name(INBOUND)
        self.quarantine_topic = topics.name(QUARANTINE)
        self.quarantine_counter = Counter(
            "switchboard_quarantined_messages_total",
            "Messages kept in quarantine instead of reaching a ticket",
            ["channel", "reason_code"],
            registry=registry or CollectorRegistry(),
        )

    @staticmethod
    def message_id(channel_key: str) -> UUID:
        """The same channel message ("telegram:update:42") always gets the same message ID."""
        return derived_id("inbound", channel_key)

    async def resolve_ticket(
        self,
        channel_key: str,
        *,
        found: str | None = None,
        lookup: Sequence[str] = (),
        remember: Sequence[str] = (),
        follows_up: bool = True,
    ) -> Resolution:
        """The ticket a channel message belongs to, in one atomic step.

        A message seen before keeps its ticket; otherwise the ticket the channel `found` by its own
        means (e.g. a subject tag), else the first conversation in `lookup` that has a ticket,
        else a new ticket ID; a merged ticket found so stands for the ticket it was merged into; a closed
        ticket found so gets a new follow-up ticket instead (issue #10:
        `follow_up_of` names it) unless `follows_up` is False (machine mail stays on the closed ticket).
        The conversations in `remember` then lead to that ticket. Raises
        StateNotRestored (a RedisError: "try again later") while Redis lost its state.
        """
        ticket_id, follow_up_of = await self.ticket_ids.resolve(
            channel_key, found=found, lookup=lookup, remember=remember, follows_up=follows_up
        )
        return Resolution(ticket_id, self.message_id(channel_key), channel_key, tuple(remember), follow_up_of)

    async def publish(self, message: InboundMessage) -> None:
        """Returns once Kafka acknowledged the message: only then may the channel be answered.

        A message too large for one record is published with its text, HTML or attachment list
        moved into attachments (see `records.fit_to_record`). Raises KafkaTimeoutError when Kafka
        does not acknowledge in time. The producer may still deliver it later; the sender's retry
        then has the same message ID, which the router deduplicates.
        """
        record = Outgoing.event(self.inbound_topic, message.ticket_id, message)
        if len(record.value) > MAX_RECORD_BYTES:
            # Hashing and writing megabytes of text belongs off the event loop.
            message = await asyncio.to_thread(fit_to_record, message, self.attachments)
            record = Outgoing.event(self.inbound_topic, message.ticket_id, message)
        await self.publisher.publish(record, timeout=PUBLISH_TIMEOUT_SECONDS)

    async def quarantine(self, event: MessageQuarantined) -> None:
        """Keeps input that belongs on no ticket, listable with its reason; returns once Kafka has it.

        Publishes to the quarantine topic, then records it in the Redis projection and counts it.
        A message already in quarantine (a redelivery) changes nothing. Raises KafkaTimeoutError
        like `publish`.
        """
        if await self.quarantined.contains(event.message_id):
            return
        record = Outgoing.event(self.quarantine_topic, str(event.message_id), event)
        await self.publisher.publish(record, timeout=PUBLISH_TIMEOUT_SECONDS)
        await self.quarantined.apply([event])
        self.quarantine_counter.labels(event.channel, event.reason_code).inc()
        logger.info(
            "message quarantined",
            extra={"message_id": str(event.message_id), "channel": event.channel, "reason_code": event.reason_code},
        )

    async def dead_letter(self, raw: bytes, *, source: str, reason: str) -> None:
        """Keeps input no ticket can be made of on the inbound DLQ, with why: nothing is lost silently."""
        await self.publisher.publish(
            Outgoing(
                f"{self.inbound_topic}{DLQ_SUFFIX}",
                None,
                raw,
                {
                    "x-original-topic": self.inbound_topic,
                    "x-source": source,
                    "x-error-reason": reason[:2000],
                    "x-failed-at": datetime.now(UTC).isoformat(),
                },
            )
        )
        logger.warning("input dead-lettered", extra={"source": source, "reason": reason[:500]})


class IntakeProcess(ServiceProcess):
    """An intake process: the common scaffold (shared.process) plus the `Intake` its channel uses.

    `app()` builds its FastAPI app: the publisher runs for its lifetime, next to whatever
    `while_running` starts (an SMTP server, an IMAP poller), and it serves /healthz, /readyz, /metrics.
    """

    def __init__(self, name: str, settings: Settings | None = None):
        super().__init__(name, settings)
        self.intake = Intake(self.publisher, self.redis, self.config, self.settings, self.registry)

    def app(
        self,
        while_running: Callable[[], AbstractAsyncContextManager[None]] = nullcontext,
        extra_checks: Callable[[], dict[str, bool]] | None = None,
        title: str | None = None,
    ) -> FastAPI:
        if extra_checks is not None:
            self.checks.append(extra_checks)
        return super().app(while_running, title)
