"""`switchboard replay`: rebuild every Redis projection from Kafka, the source of truth.

It first closes the state gate (shared.state): intake stops minting ticket IDs and the consumers
wait, so a replay can run while the stack is up. It reads every topic from its beginning up to
the offsets it found when it started, and applies each record the way the live services do (all
of it idempotent, so replaying twice changes nothing), restores each prefix's ticket counter to at
least the highest number in the log, and reopens the gate.

Key families and what rebuilds them (the README's operations section has the whole inventory):
- contacts topic: identity → contact links (and which identities are verified), undeliverable addresses,
  contact merges and unmerges (the merged contact's pointer to its survivor), contact tags (the `tags`
  field of the contact HASH);
- inbound topic: idempotency keys, conversation index (Message-IDs, Telegram chats, Slack threads),
  web-chat sessions, the ticket counters;
- tickets topic: the ticket read model (with contacts' tickets and creation times), SLA timers still to
  fire, the notifier's record of what it sent (and the conversations of the mail and Telegram messages it
  sent), round-robin turns;
- quarantine topic: the quarantine, its releases, and the ticket counters (spam's reserved ticket IDs);
- agents topic: the agents' availability (shared.agents);
- wecom topic: each WeChat Customer Service account's sync cursor; with the inbound topic's WeCom messages
  and the tickets topic's `notification.sent` to WeCom, the reply windows (shared.wecom_window);
- articles topic: the knowledge base (services/knowledge/store.py: articles, their change times, its version);
- reports topic: the days whose report digest was posted (services/reports/digest.py).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis

from services.intake.index import index_operations, ticket_number
from services.intake.ticket_ids import sequence_key
from services.intake.wecom import cursor_key
from services.knowledge.store import ArticleStore
from services.notifier.ledger import project_sent
from services.reports.digest import restore_claims
from services.router.state import turn_key
from services.sla.decide import ticket_sla_adapter
from services.sla.rebuild import TimerRebuild
from services.sla.timers import TimerStore, clocks_key
from shared.agents import Availability
from shared.config import DeskConfig
from shared.events import (
    AgentAvailabilityChanged,
    DigestPosted,
    InboundMessage,
    MessageQuarantined,
    MessageReleased,
    NotificationSent,
    TicketAssigned,
    WecomCursorAdvanced,
)
from shared.ids import TICKET_NUMBER_OFFSET
from shared.log_reader import TopicLog
from shared.quarantine import Quarantine
from shared.read_model import ReadModel
from shared.state import forget_restored, mark_restored
from shared.topics import (
    AGENTS,
    ARTICLES,
    CONTACTS,
    INBOUND,
    QUARANTINE,
    REPORTS,
    TICKETS,
    WECOM,
    Topics,
    TopicSpec,
)
from shared.wecom_window import customer_wrote, we_sent

logger = logging.getLogger(__name__)

# Applies Redis commands given as a JSON list of argument lists, in order.
_RUN = """
for _, command in ipairs(cjson.decode(ARGV[1])) do redis.call(unpack(command)) end
return 1
"""

Progress = Callable[[str, int, int], None]  # (topic, records done, records in all)
REPLAY_BATCH_RECORDS = 2000
AVAILABILITY_CHANGES = "agent availability changes"
_CONTACT_COUNTS = {
    "contact.identity_linked": "identity links",
    "contact.address_undeliverable": "undeliverable",
    "contact.merged": "contact merges",
    "contact.unmerged": "contact unmerges",
    "contact.tags_changed": "contact tag changes",
    "contact.kept_apart": "contacts kept apart",
}


@dataclass
class ReplayReport:
    """What was rebuilt, per key family."""

    counts: Counter[str] = field(default_factory=Counter)
    counters: dict[str, int] = field(default_factory=dict)
    skipped: int = 0


class _Replay:
    def __init__(self, redis: Redis, topics: Topics, config: DeskConfig):
        self.redis = redis
        self.topics = topics
        self.read_model = ReadModel(redis)
        self.quarantine = Quarantine(redis)
        self.availability = Availability(redis)
        self.articles = ArticleStore(redis)
        self.timers = TimerRebuild(config)
        self.highest: dict[str, int] = {}
        self.turns: Counter[str] = Counter()
        # Listed even when there were none, so the summary says the agents topic was read.
        self.report = ReplayReport(counts=Counter({AVAILABILITY_CHANGES: 0}))
        self.now = datetime.now(UTC)
        self._run = redis.register_script(_RUN)

    async def contacts(self, events: Sequence[Any]) -> None:
        await self.read_model.apply(events)
        for event in events:
            self.report.counts[_CONTACT_COUNTS[event.type]] += 1

    async def inbound(self, messages: Sequence[InboundMessage]) -> None:
        commands = [command for message in messages for command in index_operations(message, self.now)]
        for message in messages:
            self._saw_ticket(message.ticket_id)
            self.report.counts["idempotency keys"] += message.idempotency_key is not None
            self.report.counts["conversations"] += len(message.conversations)
        await self._commands(commands)
        wecom = [message for message in messages if message.channel == "wecom" and message.reply_route]
        if wecom:
            async with self.redis.pipeline(transaction=False) as pipe:
                for message in wecom:
                    customer_wrote(pipe, message.reply_route.address, message.received_at.timestamp())
                await pipe.execute()

    async def tickets(self, events: Sequence[Any]) -> None:
        await self.read_model.apply(events)
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                self._saw_ticket(event.ticket_id)
                self.timers.observe(event)
                if isinstance(event, NotificationSent):
                    project_sent(pipe, event, self.now)
                    if event.target.startswith("wecom:"):
                        we_sent(
                            pipe, event.target.removeprefix("wecom:"), event.occurred_at.timestamp(), event.messages
                        )
                    self.report.counts["notifications sent"] += 1
                elif isinstance(event, TicketAssigned) and event.actor == "system":
                    # Only the router's own assignments took a round-robin turn; claims and hand-ons did not.
                    self.turns[event.team] += 1
            await pipe.execute()
        self.report.counts["ticket events"] += len(events)

    async def quarantined(self, events: Sequence[MessageQuarantined | MessageReleased]) -> None:
        await self.quarantine.apply(events)
        for event in events:
            if isinstance(event, MessageReleased):
                self.report.counts["quarantine releases"] += 1
                continue
            self.report.counts["quarantined messages"] += 1
            # Spam was answered with a ticket ID it may still get (on release): never to be handed out again.
            if event.ticket_id is not None:
                self._saw_ticket(event.ticket_id)

    async def agents(self, events: Sequence[AgentAvailabilityChanged]) -> None:
        await self.availability.apply(events)
        self.report.counts[AVAILABILITY_CHANGES] += len(events)

    async def knowledge(self, events: Sequence[Any]) -> None:
        await self.articles.apply(events)
        self.report.counts["article changes"] += len(events)

    async def wecom(self, events: Sequence[WecomCursorAdvanced]) -> None:
        # In log order per account (one partition): the last cursor is where the next sync starts.
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.set(cursor_key(event.open_kfid), event.cursor)
            await pipe.execute()
        self.report.counts["WeCom sync cursors"] += len(events)

    async def digests(self, events: Sequence[DigestPosted]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            restore_claims(pipe, list(events))
            await pipe.execute()
        self.report.counts["report digests posted"] += len(events)

    async def finish(self) -> None:
        pending = self.timers.pending()
        states = self.timers.open_states()
        async with self.redis.pipeline(transaction=True) as pipe:
            await TimerStore(self.redis).write(pipe, pending, [])
            for ticket_id, state in states.items():
                pipe.set(clocks_key(ticket_id), ticket_sla_adapter.dump_json(state))
            for team, assigned in self.turns.items():
                # Fairness only: a counter at least as far as the log's assignments.
                pipe.set(turn_key(team), assigned)
            await pipe.execute()
        self.report.counts["SLA timers"] = len(pending)
        self.report.counts["SLA clocks"] = len(states)
        for prefix, highest in self.highest.items():
            floor = highest - TICKET_NUMBER_OFFSET
            current = int(await self.redis.get(sequence_key(prefix)) or 0)
            await self.redis.set(sequence_key(prefix), max(current, floor))
            self.report.counters[prefix] = max(current, floor) + TICKET_NUMBER_OFFSET

    def _saw_ticket(self, ticket_id: str) -> None:
        if (parsed := ticket_number(ticket_id)) is not None:
            prefix, number = parsed
            self.highest[prefix] = max(self.highest.get(prefix, 0), number)

    async def _commands(self, commands: list[list[str]]) -> None:
        if commands:
            await self._run(args=[json.dumps(commands, ensure_ascii=False)])


async def replay_all(
    bootstrap: str,
    redis: Redis,
    topic_prefix: str = "",
    progress: Progress | None = None,
    *,
    config: DeskConfig,
) -> ReplayReport:
    """Rebuilds every projection; returns what it rebuilt. Idempotent; safe while the stack runs.
    SLA clocks and timers are decided again from the ticket events under `config`'s policies (and
    `close_after`), as the live SLA service decided them."""
    topics = Topics(topic_prefix)
    replay = _Replay(redis, topics, config)
    await forget_restored(redis)
    for spec, apply in (
        (CONTACTS, replay.contacts),
        (INBOUND, replay.inbound),
        (TICKETS, replay.tickets),
        (QUARANTINE, replay.quarantined),
        (AGENTS, replay.agents),
        (ARTICLES, replay.knowledge),
        (WECOM, replay.wecom),
        (REPORTS, replay.digests),
    ):
        replay.report.skipped += await _read(bootstrap, topics.name(spec), spec, apply, progress)
    await replay.finish()
    await mark_restored(redis, "replay")
    return replay.report


async def _read(
    bootstrap: str,
    topic: str,
    spec: TopicSpec,
    apply: Callable[[Sequence[Any]], Awaitable[None]],
    progress: Progress | None,
) -> int:
    """Applies the topic's records from the start to its end offsets at the start; returns how many were invalid."""
    adapter: TypeAdapter[Any] = spec.adapter()
    skipped = done = 0
    # Each batch is applied in one round trip to Redis: batches larger than a report's, fetched at aiokafka's defaults.
    async with TopicLog(
        bootstrap,
        topic,
        batch_records=REPLAY_BATCH_RECORDS,
        partition_fetch_bytes=1024 * 1024,
        fetch_bytes=50 * 1024 * 1024,
    ) as log:
        if not log.partitions:
            return 0
        if progress:
            progress(topic, 0, log.total)
        async for records in log.batches():
            values = []
            for record in records:
                done += 1
                try:
                    values.append(adapter.validate_json(record.value))
                except ValidationError as error:
                    skipped += 1
                    logger.warning(
                        "skipped an invalid event",
                        extra={
                            "topic": topic,
                            "partition": record.partition,
                            "offset": record.offset,
                            "error": str(error)[:300],
                        },
                    )
            await apply(values)
            if progress:
                progress(topic, done, log.total)
    return skipped
