"""What the broker says about a run: consumer-group committed offsets, topic ends, and the ticket topic's records.

Read from outside with plain aiokafka clients (no consumer group of our own), so the bench sees the
services exactly as an operator would, whatever they do inside.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError

from shared.topics import partitions_of

# Records the tally reads per request; big, because it reads whole topics once.
_TALLY_BATCH = 10_000


class KafkaGauges:
    """Sums over a topic's partitions: how far a group has committed, how far the topic goes."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._partitions: dict[str, list[TopicPartition]] = {}
        self._committed: dict[tuple[str, str], int] = {}

    async def __aenter__(self) -> KafkaGauges:
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        if topic not in self._partitions:
            found = await partitions_of(self.bootstrap, topic)
            if not found:
                raise LookupError(f"topic {topic} does not exist")
            self._partitions[topic] = found
        return self._partitions[topic]

    async def committed(self, group: str, topic: str) -> int:
        """The records of `topic` the group has committed (0 for partitions it never committed)."""
        partitions = await self.partitions(topic)
        try:
            offsets = await self._admin.list_consumer_group_offsets(group, partitions=partitions)
        except KafkaError as error:
            # A fresh broker has no coordinator until the first group asks for one: the last reading stands.
            if not error.retriable:
                raise
            return self._committed.get((group, topic), 0)
        committed = sum(max(0, meta.offset) for tp, meta in offsets.items() if tp.topic == topic)
        self._committed[(group, topic)] = committed
        return committed

    async def assigned(self, group: str, topic: str) -> int:
        """How many of `topic`'s partitions the group's members hold now (0 while it rebalances)."""
        try:
            [response] = await self._admin.describe_consumer_groups([group])
        except KafkaError as error:
            if not error.retriable:
                raise
            return 0
        held = 0
        for described in response.to_object()["groups"]:
            if described["state"] != "Stable":
                return 0
            for member in described["members"]:
                if member["member_assignment"]:
                    assignment = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
                    held += sum(len(partitions) for name, partitions in assignment.assignment if name == topic)
        return held

    async def end(self, topic: str) -> int:
        """How many records were ever written to `topic`."""
        return sum((await self.end_offsets(topic)).values())

    async def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        return await self._consumer.end_offsets(await self.partitions(topic))


@dataclass
class TicketTally:
    """The ticket topic as the bench read it after the run."""

    by_type: Counter[str] = field(default_factory=Counter)
    # Ticket ID → the Kafka timestamp (producer CreateTime, seconds) of its first ticket.assigned record.
    assigned_at: dict[str, float] = field(default_factory=dict)


async def tally_tickets(gauges: KafkaGauges, topic: str, ticket_ids: Collection[str] | None = None) -> TicketTally:
    """Count every record on `topic` up to its current end by its `type`, and time the assignments.

    The type comes from the `event-type` header every Switchboard record carries, else from the JSON
    body; unknown types are counted as they come. `ticket_ids` limits the timing to the run's tickets.
    """
    pending = {tp: end for tp, end in (await gauges.end_offsets(topic)).items() if end > 0}
    tally = TicketTally()
    if not pending:
        return tally
    consumer = AIOKafkaConsumer(
        bootstrap_servers=gauges.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(list(pending))
        await consumer.seek_to_beginning(*pending)
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=_TALLY_BATCH)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < pending.get(tp, 0):
                        _count(tally, record, ticket_ids)
                if tp in pending and await consumer.position(tp) >= pending[tp]:
                    del pending[tp]
    finally:
        await consumer.stop()
    return tally


def _count(tally: TicketTally, record, ticket_ids: Collection[str] | None) -> None:
    event_type = dict(record.headers).get("event-type", b"").decode()
    if not event_type:
        event_type = str(json.loads(record.value).get("type", "(untyped)"))
    tally.by_type[event_type] += 1
    if event_type == "ticket.assigned" and record.key is not None:
        # Records are keyed by ticket ID (the topic registry's contract).
        ticket_id = record.key.decode()
        if ticket_ids is None or ticket_id in ticket_ids:
            tally.assigned_at.setdefault(ticket_id, record.timestamp / 1000)


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Delete those of `names` that exist: thousands of leftover partitions would exhaust the broker's files."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if doomed := sorted(set(names) & set(await admin.list_topics())):
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
