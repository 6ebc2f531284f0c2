"""The router's batch handler: inbound messages and agent commands → ticket and contact events.

Per batch: read the state in one pipeline, decide in pure code (services.router.decide), claim the
outcomes and identity links in one script, project the events into the read model, and hand them
to the engine, which publishes them and commits. A record redelivered after a crash gets the very
same events (its outcome is remembered until its batch is committed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.knowledge.search import KnowledgeIndex
from services.knowledge.store import KnowledgeCache
from services.router.assignment import on_shift
from services.router.decide import Decision, RouterEvent, RouterView, decide_command, decide_inbound
from services.router.state import RouterState
from services.router.tickets import handled_event_id
from shared.config import DeskConfig
from shared.engine import BatchResult, Record
from shared.events import (
    AddressUndeliverable,
    AgentCommand,
    ContactMerged,
    ContactsKeptApart,
    ContactTagsChanged,
    ContactUnmerged,
    IdentityLinked,
    InboundMessage,
    KeepContactsApart,
    MergeContacts,
    MergeTicket,
    StatusChanged,
    TagContact,
    TicketAssigned,
    TicketQueued,
    UnmergeContacts,
)
from shared.identities import identities_of
from shared.publisher import Outgoing
from shared.read_model import ReadModel
from shared.topics import CONTACTS, TICKETS, Topics

logger = logging.getLogger(__name__)

# Events keyed by identity on the contacts topic; every other event is keyed by ticket on the tickets topic.
_CONTACT_EVENTS = (IdentityLinked, AddressUndeliverable)
# Two router instances racing for the same records (a rebalance) settle within a try or two.
MAX_CLAIM_ATTEMPTS = 5


class ClaimConflict(RuntimeError):
    """Another instance kept claiming the same records or identities."""


class RouterHandler:
    def __init__(
        self,
        config: DeskConfig,
        state: RouterState,
        read_model: ReadModel,
        topics: Topics,
        on_queue_change: Callable[[], None] | None = None,
        knowledge: KnowledgeCache | None = None,
    ):
        self.config = config
        # The knowledge base's index, for suggesting articles to new tickets (None: no suggestions).
        self.knowledge = knowledge
        # Told when a batch freed an agent's capacity or queued a ticket: the dispatcher serves the queues.
        self.on_queue_change = on_queue_change
        self.state = state
        self.read_model = read_model
        self.tickets_topic = topics.name(TICKETS)
        self.contacts_topic = topics.name(CONTACTS)
        # Outcomes of the last batch the engine published: the next batch forgets them.
        self._published: list[str] = []
        # Outcomes this instance handed to the producer and has not yet forgotten: a duplicate delivery
        # (a Slack retry) arriving meanwhile must not publish them again.
        self._handed_over: set[str] = set()

    async def handle(self, records: list[Record[Any]]) -> BatchResult:
        keys = [_record_id(record) for record in records]
        # Read once per batch: a retried claim decides against the same knowledge base.
        knowledge = await self._knowledge(records)
        for _ in range(MAX_CLAIM_ATTEMPTS):
            remembered, view = await self._read(records, keys)
            view.knowledge = knowledge
            decided = self._decide(records, keys, remembered, view)
            # Each event is serialised once: the same bytes are remembered and published.
            outgoing = {key: [self._outgoing(event) for event in decision.events] for key, decision in decided.items()}
            new = {key: outgoing_json(outgoing[key]) for key in decided if key not in remembered}
            claims = {identity: contact for key in new for identity, contact in decided[key].claims.items()}
            merges = {contact: survivor for key in new for contact, survivor in decided[key].merges.items()}
            # The tags each retagged contact had when read: its first change in the batch says them.
            tags: dict[str, str] = {}
            for key in new:
                for contact, before in decided[key].retagged.items():
                    tags.setdefault(contact, before)
            events = (event for decision in decided.values() for event in decision.events)
            # Capacity holds across router instances: the agents given a ticket must still have the load read.
            loads = {agent_id: view.loads_read.get(agent_id, 0) for agent_id in sorted(view.capacity_checked)}
            conflicts = await self.state.claim(new, claims, dict(view.used_turns), events, loads, merges, tags)
            if not conflicts:
                break
            logger.info("another router claimed first; deciding again", extra={"conflicts": conflicts[:5]})
        else:
            raise ClaimConflict(f"claims kept conflicting: {conflicts[:5]}")
        if self.on_queue_change is not None and any(
            _changes_queues(event) for decision in decided.values() for event in decision.events
        ):
            self.on_queue_change()
        published = list(decided)
        return BatchResult(
            publish=[record for records in outgoing.values() for record in records],
            on_handed_over=lambda: self._handed_over.update(published),
            # Once Kafka has the events, their outcomes are no longer needed: the next batch forgets them.
            on_published=lambda: self._published_all(published),
        )

    async def _knowledge(self, records: list[Record[Any]]) -> KnowledgeIndex | None:
        """The knowledge base's index when the batch may open tickets and the config suggests articles."""
        if self.knowledge is None or not self.config.knowledge_base.suggestions:
            return None
        if not any(isinstance(record.value, InboundMessage) for record in records):
            return None
        return await self.knowledge.index()

    def _published_all(self, published: list[str]) -> None:
        self._published.extend(published)
        self._handed_over.difference_update(published)

    async def _read(
        self, records: list[Record[Any]], keys: list[str]
    ) -> tuple[dict[str, list[RouterEvent]], RouterView]:
        messages = [record.value for record in records if isinstance(record.value, InboundMessage)]
        return await self.state.read(
            handled=[
                (key, record.value.ticket_id or "", str(handled_event_id(record.value)))
                for key, record in zip(keys, records, strict=True)
            ],
            identities=(identity for message in messages for identity in identities_of(message.sender)),
            teams=(team.id for team in self.config.teams),
            agents=(agent.id for agent in self.config.agents),
            # A new ticket is compared with its contact's latest ones (cross-channel duplicates).
            recent=bool(self.config.duplicates.window),
            # A merge needs the ticket it merges into.
            tickets=[record.value.into_ticket_id for record in records if isinstance(record.value, MergeTicket)],
            contacts=[
                contact
                for record in records
                if isinstance(record.value, MergeContacts | UnmergeContacts | TagContact | KeepContactsApart)
                for contact in (
                    record.value.contact_id,
                    getattr(record.value, "into_contact_id", None),
                    getattr(record.value, "other_contact_id", None),
                )
                if contact
            ],
            forget=self._take_published(),
        )

    def _decide(
        self, records: list[Record[Any]], keys: list[str], remembered: dict[str, list[RouterEvent]], view: RouterView
    ) -> dict[str, Decision]:
        """Decisions by record ID, in record order; a record twice in the batch is decided once."""
        now = datetime.now(UTC)
        view.on_shift = on_shift(self.config, now)
        decided: dict[str, Decision] = {}
        # In the engine's order: each partition's in offset order, a ticket's messages and commands by time.
        for key, record in zip(keys, records, strict=True):
            if key in decided:
                continue
            if key in remembered:
                # Remembered and not handed over by this instance: claimed before a crash or by an instance
                # that lost the partition, maybe never published, so published now (the same events).
                decision = Decision([]) if key in self._handed_over else Decision(remembered[key])
            elif key in view.handled:
                # Handled and published before (a duplicate delivery, or a redelivery after the commit was lost).
                decision = Decision([])
            elif isinstance(record.value, InboundMessage):
                decision = decide_inbound(record.value, view, self.config, now)
            else:
                decision = decide_command(record.value, view, self.config, now)
            view.absorb(decision.events)
            decided[key] = decision
        return decided

    def _take_published(self) -> list[str]:
        published, self._published = self._published, []
        return published

    def _outgoing(self, event: RouterEvent) -> Outgoing:
        if isinstance(event, ContactMerged | ContactUnmerged | ContactTagsChanged | ContactsKeptApart):
            # Keyed by the merged (or tagged) contact, so that its merge and unmerge (or tag changes) keep their order.
            return Outgoing.event(self.contacts_topic, event.contact_id, event)
        if isinstance(event, _CONTACT_EVENTS):
            return Outgoing.event(self.contacts_topic, event.identity, event)
        return Outgoing.event(self.tickets_topic, event.ticket_id, event)


def outgoing_json(records: list[Outgoing]) -> bytes:
    """The events of `records` as one JSON array (what the router remembers of a decision)."""
    return b"[" + b",".join(record.value for record in records) + b"]"


def _changes_queues(event: RouterEvent) -> bool:
    """Whether the event may let the dispatcher assign a queued ticket: a ticket queued, a status change (an
    agent's ticket leaving new/open, or a queued one reopening), a ticket taken from an agent."""
    if isinstance(event, TicketAssigned):
        return event.previous_agent_id is not None
    return isinstance(event, TicketQueued | StatusChanged)


def _record_id(record: Record[InboundMessage | AgentCommand]) -> str:
    value = record.value
    return str(value.message_id) if isinstance(value, InboundMessage) else str(value.event_id)
