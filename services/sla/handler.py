"""The SLA service's batch handler and its timer firing loop.

Per batch of ticket events: read the clocks the batch touches in one pipeline, decide in pure code
(services.sla.decide), hand the deadline/met events to the engine, and once they are on Kafka
write the timers and the read model in one pipeline. Every event is derived deterministically
from the event that caused it, so a redelivered batch publishes the very same events again.
The firing loop announces warnings and breaches on the ticket topic and asks the router to close
solved tickets (auto-close) on the commands topic.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from services.sla.auto_close import METRIC as AUTO_CLOSE
from services.sla.auto_close import close_command, still_solved
from services.sla.deadlines import Timer, announcement
from services.sla.decide import TicketSla, decide, reconcile, ticket_sla_adapter
from services.sla.escalation import fire as escalate
from services.sla.timers import RECONCILED_KEY, TimerStore, clocks_key
from shared.config import DeskConfig
from shared.engine import BatchResult, Record, is_infrastructure_outage
from shared.events import (
    SLA_METRICS,
    AgentCommand,
    MessageAdded,
    PriorityChanged,
    SlaBreached,
    StatusChanged,
    TicketAssigned,
    TicketCreated,
    TicketEvent,
    TicketQueued,
)
from shared.publisher import Outgoing, Publisher
from shared.read_model import ReadModel, ticket_key
from shared.topics import COMMANDS, TICKETS, Topics

logger = logging.getLogger(__name__)

FINISHED_OR_PAUSED = frozenset({"met", "paused", "stopped"})
# The longest the firing loop sleeps, so timers scheduled by another instance are seen promptly.
MAX_IDLE_SECONDS = 0.5


class SlaHandler:
    def __init__(self, config: DeskConfig, timers: TimerStore, read_model: ReadModel, topics: Topics):
        self.config = config
        self.timers = timers
        self.read_model = read_model
        self.tickets_topic = topics.name(TICKETS)

    async def handle(self, records: list[Record[TicketEvent]]) -> BatchResult:
        relevant = [record.value for record in records if _concerns_timers(record.value)]
        if not relevant:
            return BatchResult()
        decision = decide(relevant, await self._clocks(relevant), self.config)

        async def write() -> None:
            async with self.read_model.redis.pipeline(transaction=False) as pipe:
                await self.timers.replace(pipe, decision.timers)
                for ticket_id, state in decision.states.items():
                    if state is None:
                        pipe.delete(clocks_key(ticket_id))
                    else:
                        pipe.set(clocks_key(ticket_id), ticket_sla_adapter.dump_json(state))
                await pipe.execute()
            await self.read_model.apply(decision.events)

        return BatchResult(
            publish=[Outgoing.event(self.tickets_topic, event.ticket_id, event) for event in decision.events],
            after_publish=write,
        )

    async def _clocks(self, events: list[TicketEvent]) -> dict[str, TicketSla | None]:
        tickets = list(dict.fromkeys(event.ticket_id for event in events))
        stored = await self.read_model.redis.mget([clocks_key(ticket_id) for ticket_id in tickets])
        return {
            ticket_id: ticket_sla_adapter.validate_json(raw) if raw is not None else None
            for ticket_id, raw in zip(tickets, stored, strict=True)
        }


def _concerns_timers(event: TicketEvent) -> bool:
    """Whether the event may move a clock (services.sla.decide), so that the batch reads its ticket."""
    if isinstance(event, MessageAdded):
        # A customer message may start next response; a public agent reply meets the response clocks.
        return event.author == "customer" or (event.author == "agent" and not event.internal)
    return isinstance(
        event, TicketCreated | StatusChanged | PriorityChanged | TicketAssigned | TicketQueued | SlaBreached
    )


class TimerFiring:
    """Announces due warnings and breaches and asks for due auto-closes, a batch of due timers at a
    time, each once across instances."""

    def __init__(
        self, timers: TimerStore, read_model: ReadModel, publisher: Publisher, topics: Topics, config: DeskConfig
    ):
        self.timers = timers
        self.read_model = read_model
        self.publisher = publisher
        self.tickets_topic = topics.name(TICKETS)
        self.commands_topic = topics.name(COMMANDS)
        self.config = config

    async def run(self) -> None:
        while True:
            try:
                await self.fire_due(time.time())
                next_fire = await self.timers.next_fire_time()
            except Exception as error:
                # Claimed timers stay leased and fire again after the lease, once the cause is gone.
                if is_infrastructure_outage(error):
                    logger.warning("sla timers unavailable, retrying", extra={"error": repr(error)})
                else:
                    logger.exception("sla timer round failed")
                next_fire = None
            idle = MAX_IDLE_SECONDS if next_fire is None else next_fire - time.time()
            await asyncio.sleep(min(max(idle, 0.0), MAX_IDLE_SECONDS))

    async def reconcile(self, now: datetime, batch: int = 500) -> int:
        """Brings every open ticket's clocks in line with the config (run at start: policies or calendars may
        have changed): announces the deadlines that moved and replaces their timers. Returns how many
        deadline events it published. Skipped when the clocks were last reconciled with this very config and
        version: the scan reads every open ticket's clocks (seconds with a hundred thousand open tickets)."""
        redis, published = self.read_model.redis, 0
        digest = config_digest(self.config)
        if await redis.get(RECONCILED_KEY) == digest:
            return 0
        keys = [key async for key in redis.scan_iter(match=clocks_key("*"), count=batch)]
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            tickets = [key.removeprefix(clocks_key("")) for key in chunk]
            async with redis.pipeline(transaction=False) as pipe:
                pipe.mget(chunk)
                for ticket_id in tickets:
                    pipe.hmget(ticket_key(ticket_id), *(f"{metric}_due" for metric in SLA_METRICS))
                raw, *dues = await pipe.execute()
            states = {
                ticket_id: ticket_sla_adapter.validate_json(value)
                for ticket_id, value in zip(tickets, raw, strict=True)
                if value is not None
            }
            announced = {
                (ticket_id, metric): datetime.fromisoformat(due) if due else None
                for ticket_id, row in zip(tickets, dues, strict=True)
                for metric, due in zip(SLA_METRICS, row, strict=True)
            }
            decision = reconcile(states, announced, self.config, now)
            await self.publisher.publish_many(
                [Outgoing.event(self.tickets_topic, event.ticket_id, event) for event in decision.events], timeout=30
            )
            async with redis.pipeline(transaction=False) as pipe:
                await self.timers.replace(pipe, decision.timers)
                for ticket_id, state in decision.states.items():
                    if state is not None:
                        pipe.set(clocks_key(ticket_id), ticket_sla_adapter.dump_json(state))
                await pipe.execute()
            await self.read_model.apply(decision.events)
            published += len(decision.events)
        if published:
            logger.info("sla clocks reconciled with the config", extra={"events": published})
        await redis.set(RECONCILED_KEY, digest)
        return published

    async def fire_due(self, now: float) -> int:
        due = await self.timers.claim_due(now)
        if not due:
            return 0
        async with self.read_model.redis.pipeline(transaction=False) as pipe:
            for timer in due:
                pipe.hmget(ticket_key(timer.ticket_id), *_state_fields(timer))
            states = await pipe.execute()
        at = datetime.now(UTC)
        events: list[TicketEvent] = []
        commands: list[AgentCommand] = []
        for timer, state in zip(due, states, strict=True):
            fired, asked = fired_by(timer, dict(zip(_state_fields(timer), state, strict=True)), self.config, at)
            events += fired
            commands += asked
        await self.publisher.publish_many(
            [Outgoing.event(self.tickets_topic, event.ticket_id, event) for event in events]
            + [Outgoing.event(self.commands_topic, command.ticket_id, command) for command in commands],
            timeout=30,
        )
        await self.read_model.apply(events)
        await self.timers.finished(due)
        for message in [*events, *commands]:
            logger.info("sla fired", extra={"ticket_id": message.ticket_id, "kind": message.type})
        return len(events) + len(commands)


def fired_by(
    timer: Timer, ticket: dict[str, str | None], config: DeskConfig, now: datetime
) -> tuple[list[TicketEvent], list[AgentCommand]]:
    """What a due timer announces and asks for, given the ticket's read-model fields (`_state_fields`).
    A reply may land between claiming and firing: a met, paused or stopped clock announces nothing; nor
    does a ticket reopened since ask to be closed."""
    if timer.metric == AUTO_CLOSE:
        if still_solved(timer, ticket["status"], ticket["resolutions"]):
            return [], [close_command(timer, now, config.close_after)]
        return [], []
    if ticket[f"{timer.metric}_sla"] in FINISHED_OR_PAUSED:
        return [], []
    if timer.kind == "escalation":
        event, commands = escalate(timer, ticket, config, now)
        return ([event] if event else []), commands
    return [announcement(timer, now)], []


def _state_fields(timer: Timer) -> tuple[str, ...]:
    """The ticket's read-model fields that say whether `timer` still has something to do (and, for an
    escalation, whom it concerns)."""
    if timer.metric == AUTO_CLOSE:
        return ("status", "resolutions")
    if timer.kind == "escalation":
        return (f"{timer.metric}_sla", "team", "assignee_id", "priority")
    return (f"{timer.metric}_sla",)


def config_digest(config: DeskConfig) -> str:
    """SHA-256 (hex) of the config as validated and of Switchboard's version: either changing may move a
    deadline (a policy, a calendar, how clocks are computed)."""
    try:
        release = version("switchboard")
    except PackageNotFoundError:
        release = "unknown"
    return hashlib.sha256(f"{release}\n{config.model_dump_json(warnings=False)}".encode()).hexdigest()
