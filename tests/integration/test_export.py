"""`switchboard export` on the real broker: 10,000 tickets stream through with memory that does not grow with
the log (the log reader fetches a bounded amount ahead, the exporter holds one record at a time)."""

from __future__ import annotations

import csv
import json
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from services.reports.export import export_lines
from shared.events import ContactSummary, MessageAdded, TicketCreated
from shared.log_reader import TopicLog
from shared.publisher import Outgoing, Publisher
from shared.settings import Settings
from shared.topics import TICKETS, Topics, ensure_topics
from tests.support import switchboard_cli

pytestmark = pytest.mark.integration

TICKETS_COUNT = 10_000
START = datetime(2026, 11, 2, tzinfo=UTC)
# A long subject, so that the log (~16 MB) dwarfs what a streaming export may hold.
SUBJECT = "Cannot log in " + "x" * 1200


async def _publish_tickets(settings: Settings) -> None:
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics)
    publisher = Publisher(settings.kafka_bootstrap, client_id="test", registry=CollectorRegistry())
    await publisher.start()
    try:
        for start in range(0, TICKETS_COUNT, 1000):
            records = []
            for number in range(start, start + 1000):
                ticket_id, at = f"SB-{1001 + number}", START + timedelta(minutes=number)
                created = TicketCreated(
                    event_id=uuid.uuid4(), occurred_at=at, ticket_id=ticket_id, channel="form", subject=SUBJECT,
                    contact=ContactSummary(contact_id=f"c{number}"), team="support", category="general",
                    priority="normal",
                )  # fmt: skip
                records.append(Outgoing.event(topics.name(TICKETS), ticket_id, created))
                if number % 10 == 0:
                    message = MessageAdded(
                        event_id=uuid.uuid4(), occurred_at=at, ticket_id=ticket_id, message_id=uuid.uuid4(),
                        author="customer", channel="form", text="Hello", received_at=at,
                    )  # fmt: skip
                    records.append(Outgoing.event(topics.name(TICKETS), ticket_id, message))
            await publisher.publish_many(records, timeout=60)
    finally:
        await publisher.stop()


async def test_an_export_of_10000_tickets_streams_with_bounded_memory(settings: Settings, tmp_path):
    await _publish_tickets(settings)

    async def values(log: TopicLog):
        async for record in log:
            yield record.value

    tracemalloc.start()
    try:
        written = size = 0
        async with TopicLog(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(TICKETS)) as log:
            assert log.total == TICKETS_COUNT + TICKETS_COUNT // 10
            async for line in export_lines(values(log), "tickets", "csv"):
                written += 1
                size += len(line)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written == TICKETS_COUNT + 1  # and the header
    assert size > 12_000_000
    # What a consumer fetches ahead (1 MB) and one record; far from the 12 MB that went through.
    assert peak < 6_000_000, f"peak {peak:,} bytes"

    # The command: JSON lines of the messages, then a CSV of the tickets since a day, to files.
    out = tmp_path / "messages.jsonl"
    result = switchboard_cli(settings, "export", "--kind", "messages", "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == TICKETS_COUNT // 10 and json.loads(lines[0])["type"] == "ticket.message_added"
    since = (START + timedelta(minutes=TICKETS_COUNT - 100)).isoformat()
    out = tmp_path / "tickets.csv"
    result = switchboard_cli(
        settings, "export", "--kind", "tickets", "--format", "csv", "--since", since, "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "exported 100 tickets" in result.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 100 and {row["team"] for row in rows} == {"support"}
