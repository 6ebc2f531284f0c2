"""Assignment with capacity and team queues on the real broker and Redis (issue #11 acceptance): the router
fills its agents up to capacity, queues the rest in priority order, serves the queue the moment capacity
frees, takes work back from an agent away past the grace period, and four routers racing never put an
agent over capacity."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from services.router.app import SUBSCRIPTION, create_app
from services.router.state import RouterState
from shared.agents import Availability
from shared.events import AgentAvailabilityChanged, InboundMessage, Sender, SetStatus
from shared.read_model import ReadModel, agent_working_key, team_queue_key
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.topics import AGENTS, COMMANDS, INBOUND, TICKETS, Topics
from tests.support import distinct, in_process_client, read_topic, wait_until_consumed

pytestmark = pytest.mark.integration

CAPACITY = 2
ROUTERS = SUBSCRIPTION.group_id


def inbound(ticket_id: str, text: str) -> InboundMessage:
    message_id = uuid.uuid4()
    return InboundMessage.received(
        message_id=message_id,
        ticket_id=ticket_id,
        received_at=datetime.now(UTC),
        channel="form",
        channel_message_id=str(message_id),
        source="contact",
        sender=Sender(name="Customer", email=f"{ticket_id.lower()}@example.com"),
        subject="Cannot log in",
        text=text,
    )


def desk(tmp_path: Path, *, sweep_every: str = "60s", away_grace: str = "10m") -> Path:
    """Three agents of capacity 2 in one least-loaded team; a ticket's text sets its priority."""
    config = {
        "teams": [
            {
                "id": "support",
                "name": "Support",
                "slack_channel": "C0SUPPORT",
                "members": ["ana", "ben", "chloe"],
                "routing": "least_loaded",
                "sla_policy": "standard",
            }
        ],
        "agents": [
            {"id": agent, "name": agent.title(), "slack_user_id": f"U0{agent.upper()}", "capacity": CAPACITY}
            for agent in ("ana", "ben", "chloe")
        ],
        "default_classification": {"team": "support"},
        "rules": [
            {"name": level, "when": {"keywords_any": [level]}, "set": {"priority": level, "force": True}}
            for level in ("urgent", "high", "low")
        ],
        "sla_policies": [{"id": "standard", "first_response": "4h"}],
        "assignment": {"sweep_every": sweep_every, "away_grace": away_grace},
    }
    path = tmp_path / "desk.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Broker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)

    async def send(self, topic: str, value, key: str) -> None:
        await self.producer.send_and_wait(self.topics.name(topic), value.model_dump_json().encode(), key=key.encode())

    async def ticket(self, ticket_id: str, text: str = "help") -> None:
        await self.send(INBOUND, inbound(ticket_id, text), ticket_id)

    async def events(self, done) -> list[dict]:
        """The ticket topic's distinct events once `done(events)` holds."""
        records = await read_topic(
            self.settings.kafka_bootstrap,
            self.topics.name(TICKETS),
            at_least=1,
            timeout=60,
            until=lambda records: done(distinct(records)),
        )
        return distinct(records)


def assigned(events: list[dict]) -> dict[str, str]:
    """Each ticket's assignee as the events (in topic order per ticket) leave it."""
    assignees: dict[str, str] = {}
    for event in events:
        if event["type"] == "ticket.assigned":
            assignees[event["ticket_id"]] = event["agent_id"]
        elif event["type"] == "ticket.queued":
            assignees.pop(event["ticket_id"], None)
    return assignees


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [event for event in events if event["type"] == kind]


@pytest.fixture
async def broker(settings):
    broker = Broker(settings)
    await broker.producer.start()
    try:
        yield broker
    finally:
        await broker.producer.stop()


async def test_ten_tickets_fill_three_agents_the_rest_queue_in_priority_order_and_solving_serves_the_head(
    settings, broker, tmp_path
):
    settings = settings.model_copy(update={"config": desk(tmp_path)})
    async with in_process_client(create_app(settings)):
        for n in range(1, 7):
            await broker.ticket(f"SB-{1000 + n}")
        events = await broker.events(lambda events: len(of_type(events, "ticket.assigned")) == 6)
        assert Counter(assigned(events).values()) == {"ana": 2, "ben": 2, "chloe": 2}
        for n, priority in zip(range(7, 11), ("low", "high", "normal", "urgent"), strict=True):
            await broker.ticket(f"SB-{1000 + n}", text=f"help {priority}")
        events = await broker.events(lambda events: len(of_type(events, "ticket.queued")) == 4)
        assert len(of_type(events, "ticket.assigned")) == 6
        queued = of_type(events, "ticket.queued")
        assert {event["reason"] for event in queued} == {"no member is eligible: at capacity (2/2)"}
        redis = connect_redis(settings.redis_url)
        try:
            queue = await redis.smembers(team_queue_key("support"))
            assert queue == {"SB-1007", "SB-1008", "SB-1009", "SB-1010"}
            assert [await redis.scard(agent_working_key(agent)) for agent in ("ana", "ben", "chloe")] == [CAPACITY] * 3

            # Solving a ticket frees its agent: the head of the queue (urgent) is theirs, then the next (high).
            for n, head in ((1, "SB-1010"), (2, "SB-1008")):
                solver = assigned(events)[f"SB-{1000 + n}"]
                solved = SetStatus(
                    event_id=uuid.uuid4(),
                    occurred_at=datetime.now(UTC),
                    ticket_id=f"SB-{1000 + n}",
                    agent_id=solver,
                    status="solved",
                )
                await broker.send(COMMANDS, solved, solved.ticket_id)
                events = await broker.events(lambda events, head=head: head in assigned(events))
                assert assigned(events)[head] == solver
                [dispatched] = [e for e in of_type(events, "ticket.assigned") if e["ticket_id"] == head]
                assert dispatched["actor"] == "system"
            assert await redis.smembers(team_queue_key("support")) == {"SB-1007", "SB-1009"}
            ticket = await ReadModel(redis).ticket("SB-1010")
            assert [entry["type"] for entry in ticket["history"]][-2:] == ["ticket.queued", "ticket.assigned"]
        finally:
            await redis.aclose()


async def test_an_agent_away_past_the_grace_period_has_their_tickets_queued_and_gets_them_back(
    settings, broker, tmp_path
):
    settings = settings.model_copy(update={"config": desk(tmp_path, sweep_every="0.2s", away_grace="1s")})
    redis = connect_redis(settings.redis_url)
    try:
        async with in_process_client(create_app(settings)):
            for n in range(1, 7):
                await broker.ticket(f"SB-{1000 + n}")
            events = await broker.events(lambda events: len(of_type(events, "ticket.assigned")) == 6)
            anas = sorted(ticket for ticket, agent in assigned(events).items() if agent == "ana")

            async def availability(available: bool) -> None:
                # What `/sb away` and `/sb back` do: publish the change and apply it.
                change = AgentAvailabilityChanged(
                    event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), agent_id="ana", available=available
                )
                await broker.send(AGENTS, change, "ana")
                await Availability(redis).apply([change])

            await availability(False)
            events = await broker.events(lambda events: len(of_type(events, "ticket.queued")) == 2)
            requeued = of_type(events, "ticket.queued")
            assert sorted(event["ticket_id"] for event in requeued) == anas
            assert all(event["previous_agent_id"] == event["preferred_agent_id"] == "ana" for event in requeued)
            assert all(event["reason"] == "ana is away" for event in requeued)
            # Ben and Chloé are full: the tickets wait for Ana, who gets them back when she is.
            assert await redis.smembers(team_queue_key("support")) == set(anas)
            await availability(True)
            events = await broker.events(lambda events: len(of_type(events, "ticket.assigned")) == 8)
            assert {ticket: assigned(events)[ticket] for ticket in anas} == dict.fromkeys(anas, "ana")
    finally:
        await redis.aclose()


async def test_four_routers_racing_never_put_an_agent_over_capacity(settings, broker, tmp_path):
    settings = settings.model_copy(update={"config": desk(tmp_path, sweep_every="0.5s")})
    tickets = [f"SB-{2000 + n}" for n in range(200)]
    async with AsyncExitStack() as stack:
        for _ in range(4):
            await stack.enter_async_context(in_process_client(create_app(settings)))
        await asyncio.gather(*(broker.ticket(ticket) for ticket in tickets))
        events = await broker.events(
            lambda events: len(assigned(events)) + len(of_type(events, "ticket.queued")) >= 200
        )
        # Nothing was solved: every assignment an agent ever got still counts against their capacity.
        given = Counter(event["agent_id"] for event in of_type(events, "ticket.assigned"))
        assert given == {"ana": CAPACITY, "ben": CAPACITY, "chloe": CAPACITY}

        # Each agent solves one: the four dispatchers race for the freed capacity.
        firsts = {}
        for ticket, agent in assigned(events).items():
            firsts.setdefault(agent, ticket)
        for agent, ticket in firsts.items():
            solved = SetStatus(
                event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), ticket_id=ticket, agent_id=agent, status="solved"
            )
            await broker.send(COMMANDS, solved, ticket)
        events = await broker.events(lambda events: len(of_type(events, "ticket.assigned")) >= 9)
        # Every command the dispatchers published by now is applied (or dropped): an extra assignment would show.
        await wait_until_consumed(settings.kafka_bootstrap, broker.topics.group(ROUTERS), broker.topics.name(COMMANDS))
        events = await broker.events(lambda events: True)
    solved = {event["ticket_id"] for event in of_type(events, "ticket.status_changed")}
    given = Counter(event["agent_id"] for event in of_type(events, "ticket.assigned"))
    assert given == {"ana": CAPACITY + 1, "ben": CAPACITY + 1, "chloe": CAPACITY + 1}
    loads = Counter(agent for ticket, agent in assigned(events).items() if ticket not in solved)
    assert loads == {"ana": CAPACITY, "ben": CAPACITY, "chloe": CAPACITY}
    assert all(not event.get("over_capacity") for event in of_type(events, "ticket.assigned"))


async def test_the_claim_refuses_a_batch_whose_agent_load_changed_since_it_was_read(settings):
    redis = connect_redis(settings.redis_url)
    try:
        state = RouterState(redis)
        await redis.sadd(agent_working_key("ana"), "SB-1001")
        # Decided against Ana with no ticket, she has one now: another router gave it to her meanwhile.
        assert await state.claim({"record-1": b"[]"}, {}, {}, (), {"ana": 0}) == [agent_working_key("ana")]
        assert not await redis.exists("sb:router:outcome:record-1")
        assert await state.claim({"record-1": b"[]"}, {}, {}, (), {"ana": 1}) == []
    finally:
        await redis.aclose()
