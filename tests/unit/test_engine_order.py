"""The order in which the engine hands a batch to its handler."""

from pathlib import Path
from types import SimpleNamespace

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from shared.engine import ConsumerEngine
from shared.publisher import Publisher
from shared.topics import COMMANDS, INBOUND, Topics

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "examples"
MESSAGE = (EXAMPLES / INBOUND.name / "email-message.json").read_bytes()
COMMAND = (EXAMPLES / COMMANDS.name / "command.reply.json").read_bytes()


def raw(topic: str, offset: int, at_ms: int, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(
        topic=topic, partition=3, offset=offset, key=b"SB-1042", timestamp=at_ms, value=value, headers=()
    )


def engine() -> ConsumerEngine:
    return ConsumerEngine(
        name="test",
        bootstrap="127.0.0.1:9",
        group_id="test",
        topics=Topics(""),
        specs=[INBOUND, COMMANDS],
        handler=None,
        publisher=Publisher("127.0.0.1:9", client_id="test", registry=CollectorRegistry()),
        registry=CollectorRegistry(),
    )


def test_a_tickets_messages_and_commands_are_handed_over_in_the_order_they_happened():
    inbound, commands = TopicPartition(INBOUND.name, 3), TopicPartition(COMMANDS.name, 3)
    fetched = {
        # The customer wrote at 10 and 30; the agent resolved at 20 (e.g. sb_resolve, then "still broken").
        inbound: [raw(INBOUND.name, 7, 10_000, MESSAGE), raw(INBOUND.name, 8, 30_000, MESSAGE)],
        commands: [raw(COMMANDS.name, 4, 20_000, COMMAND)],
    }

    decoded, invalid = engine()._decode(fetched)

    assert not invalid
    assert [(record.topic, record.offset) for record in decoded] == [
        (INBOUND.name, 7),
        (COMMANDS.name, 4),
        (INBOUND.name, 8),
    ]


def test_one_partition_keeps_its_offset_order_whatever_its_timestamps():
    inbound = TopicPartition(INBOUND.name, 3)
    # Two intake instances with clocks a little apart wrote one ticket's messages.
    fetched = {inbound: [raw(INBOUND.name, 7, 50_000, MESSAGE), raw(INBOUND.name, 8, 40_000, MESSAGE)]}

    decoded, _ = engine()._decode(fetched)

    assert [record.offset for record in decoded] == [7, 8]
