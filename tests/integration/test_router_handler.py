"""The router's batch handler: the same behaviour in memory (handler fed directly) and on the real broker."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from services.router.app import create_app
from services.router.decide import decide_inbound
from services.router.handler import RouterHandler
from services.router.state import outcome_key, turn_key
from shared.agents import Availability
from shared.engine import Record
from shared.events import AgentAvailabilityChanged, AgentReply, InboundMessage, Sender
from shared.read_model import ticket_history_key, ticket_key
from shared.topics import COMMANDS, INBOUND, TICKETS, Topics
from tests.support import decoded, distinct_at_least, in_process_client, read_topic

pytestmark = pytest.mark.integration


def inbound(
    ticket_id: str, email: str, *, kind: str = "message", subject: str = "Cannot log in", text: str = "help", **fields
) -> InboundMessage:
    message_id = uuid.uuid4()
    now = datetime.now(UTC)
    return InboundMessage(
        event_id=message_id,
        occurred_at=now,
        ticket_id=ticket_id,
        message_id=message_id,
        channel="form",
        kind=kind,
        channel_message_id=str(message_id),
        source="contact",
        sender=Sender(name="Ana", email=email),
        subject=subject,
        text=text,
        received_at=now,
        **fields,
    )


def reply(ticket_id: str) -> AgentReply:
    return AgentReply(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), ticket_id=ticket_id, text="Try again", agent_id="ana"
    )


def as_records(topic: str, values: list) -> list[Record]:
    now = datetime.now(UTC)
    return [Record(topic, 0, offset, value.ticket_id, now, value) for offset, value in enumerate(values)]


async def test_a_batch_opens_tickets_joins_follow_ups_and_keeps_per_ticket_order(handler):
    first, follow_up = inbound("SB-2001", "ana@example.com"), inbound("SB-2001", "ana@example.com")
    # Another request of the same contact (the same one again would be merged as a duplicate).
    other = inbound("SB-2002", "ana@example.com", subject="Invoice", text="Where is my December invoice?")
    result = await handler.handle(as_records("t.switchboard.inbound.v1", [first, follow_up, other]))

    types = [(record.key, record.headers["event-type"]) for record in result.publish]
    assert [kind for key, kind in types if key == "SB-2001"] == [
        "ticket.created",
        "ticket.message_added",
        "ticket.assigned",
        "ticket.message_added",
    ]
    ticket = await handler.read_model.ticket("SB-2001")
    assert ticket["assignee"]["agent_id"] == "ana" and len(ticket["messages"]) == 2
    # One contact for one address, even within one batch; the identity link is an event of its own.
    assert (await handler.read_model.ticket("SB-2002"))["contact"]["id"] == ticket["contact"]["id"]
    links = [record for record in result.publish if record.headers["event-type"] == "contact.identity_linked"]
    assert [record.key for record in links] == ["email:ana@example.com"]
    assert (await handler.read_model.ticket("SB-2002"))["assignee"]["agent_id"] == "ben", "round robin"


async def test_a_redelivered_batch_publishes_the_very_same_events(handler):
    records = as_records("t.switchboard.inbound.v1", [inbound("SB-2003", "bo@example.com")])
    # The first try's events never reached Kafka (a crash): its outcome is remembered.
    first = await handler.handle(records)
    again = await handler.handle(records)
    assert [record.value for record in again.publish] == [record.value for record in first.publish]
    # Once Kafka acknowledged them, the outcome is forgotten (by the next batch); the message is on its
    # ticket, so a redelivery adds nothing.
    again.on_published()
    await handler.handle([])
    after = await handler.handle(records)
    assert after.publish == [] and after.rejected == []


async def test_a_duplicate_delivered_while_its_events_are_acknowledged_publishes_nothing_more(handler):
    """A Slack retry of a command can arrive in the next batch, while Kafka still acknowledges the first
    delivery's events: those are in the producer's hands already, so the duplicate adds no copy."""
    records = as_records("t.switchboard.inbound.v1", [inbound("SB-2004", "di@example.com")])
    first = await handler.handle(records)
    first.on_handed_over()
    duplicate = await handler.handle(records)
    assert first.publish and duplicate.publish == []
    # Another instance taking over before the acknowledgements (a crash) publishes them again.
    other = RouterHandler(handler.config, handler.state, handler.read_model, Topics("t."))
    again = await other.handle(records)
    assert [record.value for record in again.publish] == [record.value for record in first.publish]


async def test_a_claim_another_router_won_projects_nothing(handler):
    message = inbound("SB-2005", "cy@example.com")
    state = handler.state
    remembered, view = await state.read(handled=[(str(message.message_id), "SB-2005", "")], identities=(), teams=())
    decision = decide_inbound(message, view, handler.config, datetime.now(UTC))
    # Another instance remembered an outcome for the same record first: this claim writes nothing at all.
    await state.redis.set(outcome_key(str(message.message_id)), b"[]")
    conflicts = await state.claim({str(message.message_id): b"[]"}, decision.claims, {"support": 1}, decision.events)
    assert conflicts == [outcome_key(str(message.message_id))]
    assert await handler.read_model.ticket("SB-2005") is None
    assert await state.redis.get(turn_key("support")) is None
    # Without the rival's outcome, the same claim writes the outcome and projects the events, once.
    await state.redis.delete(outcome_key(str(message.message_id)))
    for _ in range(2):
        await state.claim({str(message.message_id): b"[]"}, decision.claims, {}, decision.events)
    ticket = await handler.read_model.ticket("SB-2005")
    assert len(ticket["messages"]) == 1 and [entry["type"] for entry in ticket["history"]] == [
        "ticket.created",
        "ticket.message_added",
        "ticket.assigned",
    ]
    assert ticket["contact"]["emails"] == ["cy@example.com"]


async def test_a_reply_to_an_unknown_ticket_is_a_rejection_event_and_bounces_are_events(handler):
    bounce = inbound("SB-2004", "mailer-daemon@example.net", kind="bounce", bounced_recipients=["Gone@Example.net"])
    result = await handler.handle(
        [*as_records("t.switchboard.commands.v1", [reply("SB-2999")]), *as_records("t.x", [bounce])]
    )
    assert result.rejected == []
    # Decided in the order given (the engine orders a batch by record time).
    assert [(record.key, record.headers["event-type"]) for record in result.publish] == [
        ("SB-2999", "command.rejected"),
        ("email:gone@example.net", "contact.address_undeliverable"),
    ]
    # Refused, it leaves no trace of a ticket that does not exist.
    assert not await handler.read_model.redis.exists(ticket_key("SB-2999"), ticket_history_key("SB-2999"))
    assert await handler.read_model.redis.sismember("sb:undeliverable", "gone@example.net")


async def test_on_the_real_broker_messages_and_commands_become_events_in_order(settings):
    topics = Topics(settings.topic_prefix)
    app = create_app(settings)
    first = inbound("SB-2101", "cy@example.com")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    async with in_process_client(app):
        await producer.start()
        try:
            for topic, value in (
                (INBOUND, first),
                (INBOUND, first),  # a duplicate delivery changes nothing
                (INBOUND, inbound("SB-2101", "cy@example.com")),
                (COMMANDS, reply("SB-2101")),
                (COMMANDS, reply("SB-2999")),  # refused: a command.rejected event on its (unknown) ticket
            ):
                await producer.send_and_wait(
                    topics.name(topic), value.model_dump_json().encode(), key=value.ticket_id.encode()
                )
        finally:
            await producer.stop()
        published = decoded(
            await read_topic(settings.kafka_bootstrap, topics.name(TICKETS), at_least=7, until=distinct_at_least(7))
        )
    # At least once: a rebalance in the shared test broker's consumer group may publish a batch's
    # remembered outcome again, as the very same events; consumers deduplicate by event ID.
    copies = {event["event_id"]: event for event in published}
    assert all(event == copies[event["event_id"]] for event in published)
    events = list({event["event_id"]: event for event in published}.values())
    ticket_events = [event for event in events if event["ticket_id"] == "SB-2101"]
    # Order holds per topic partition: the customer's messages in order, the agent's reply and what it
    # caused in order; the two topics' records may interleave (fetched in separate batches).
    customer = [event for event in ticket_events if event.get("author") != "agent" and "to_status" not in event]
    assert [event["type"] for event in customer] == [
        "ticket.created",
        "ticket.message_added",
        "ticket.assigned",
        "ticket.message_added",
    ]
    agent_reply, opened = [event for event in ticket_events if event not in customer]
    assert agent_reply["author"] == "agent" and (opened["from_status"], opened["to_status"]) == ("new", "open")
    [refused] = [event for event in events if event["ticket_id"] == "SB-2999"]
    assert refused["type"] == "command.rejected" and refused["reason"] == "there is no ticket SB-2999"


async def test_new_tickets_pass_by_an_agent_who_is_away(handler):
    away = AgentAvailabilityChanged(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), agent_id="ben", available=False
    )
    await Availability(handler.read_model.redis).apply([away])
    messages = [inbound(f"SB-{2100 + n}", f"c{n}@example.com") for n in range(6)]

    result = await handler.handle(as_records("t.switchboard.inbound.v1", messages))

    assigned = [record for record in result.publish if record.headers["event-type"] == "ticket.assigned"]
    agents = [json.loads(record.value)["agent_id"] for record in assigned]
    assert len(agents) == 6 and "ben" not in agents and {"ana", "chloe"} <= set(agents)
