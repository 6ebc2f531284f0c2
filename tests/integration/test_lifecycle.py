"""The ticket lifecycle on real Redis (the handler fed directly) and on the real broker: agent commands
become ticket events, the read model keeps status, lists, queues and the audit trail."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from services.intake.ticket_ids import TicketIds
from services.router.app import create_app
from services.router.handler import RouterHandler
from shared.events import (
    ACTIVE_STATUSES,
    AgentNote,
    AgentReply,
    AssignTicket,
    ClaimTicket,
    EscalateTicket,
    MergeTicket,
    RateTicket,
    ReplyRoute,
    SetPriority,
    SetStatus,
    TagTicket,
)
from shared.read_model import ReadModel, agent_tickets_key, team_queue_key
from shared.redis_client import connect_redis
from shared.topics import COMMANDS, INBOUND, TICKETS, Topics
from tests.conftest import API_TOKEN
from tests.integration.test_replies import post_form
from tests.integration.test_router_handler import as_records, inbound
from tests.support import (
    ServiceProcesses,
    distinct,
    distinct_at_least,
    in_process_client,
    read_topic,
    switchboard_cli,
    wait_for_ticket,
)

pytestmark = pytest.mark.integration

AGENTS = ("ana", "ben", "chloe", "lena")


def command(kind: type, ticket_id: str, agent: str = "ana", **fields):
    return kind(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), ticket_id=ticket_id, agent_id=agent, **fields)


async def handle(handler: RouterHandler, values: list) -> list[str]:
    """Handles one batch as the engine does (published, so the next batch forgets its outcomes); its event types."""
    result = await handler.handle(as_records("t.switchboard.commands.v1", values))
    result.on_published()
    return [record.headers["event-type"] for record in result.publish]


async def listed_in(redis, ticket_id: str) -> set[str]:
    """The agents' lists and team queues holding the ticket."""
    keys = [agent_tickets_key(agent) for agent in AGENTS] + [team_queue_key("support")]
    return {key for key in keys if await redis.sismember(key, ticket_id)}


async def test_commands_in_one_batch_see_each_other_and_the_read_model_follows(handler):
    redis = handler.read_model.redis
    await handle(handler, [inbound("SB-3001", "dee@example.com")])
    assert (await handler.read_model.ticket("SB-3001"))["status"] == "new"
    assert await listed_in(redis, "SB-3001") == {agent_tickets_key("ana")}

    claim = command(ClaimTicket, "SB-3001", "ben")
    types = await handle(
        handler,
        [
            claim,
            command(SetStatus, "SB-3001", "ben", status="pending", reason="asked for a screenshot"),
            command(SetPriority, "SB-3001", "ben", priority="high"),
            command(TagTicket, "SB-3001", "ben", add=["login", "vip"]),
            command(AgentNote, "SB-3001", "ben", text="probably SSO"),
        ],
    )
    assert types == [
        "ticket.assigned",
        "ticket.status_changed",
        "ticket.status_changed",
        "ticket.priority_changed",
        "ticket.tags_changed",
        "ticket.message_added",
    ]
    ticket = await handler.read_model.ticket("SB-3001")
    assert (ticket["status"], ticket["priority"], ticket["tags"]) == ("pending", "high", ["login", "vip"])
    assert ticket["assignee"]["agent_id"] == "ben" and ticket["public_replies"] == 0
    assert ticket["messages"][-1]["internal"] is True
    assert await listed_in(redis, "SB-3001") == {agent_tickets_key("ben")}
    assert [(entry["type"], entry["actor"]) for entry in ticket["history"]][-6:] == [
        ("ticket.assigned", "ben"),
        ("ticket.status_changed", "ben"),
        ("ticket.status_changed", "ben"),
        ("ticket.priority_changed", "ben"),
        ("ticket.tags_changed", "ben"),
        ("ticket.message_added", "ben"),
    ]
    assert ticket["history"][-4]["reason"] == "asked for a screenshot"

    # A redelivered command (its outcome forgotten, its event applied) changes nothing.
    assert await handle(handler, []) == []
    assert await handle(handler, [claim]) == []
    assert len((await handler.read_model.ticket("SB-3001"))["history"]) == len(ticket["history"])


async def test_queued_solved_reopened_and_merged_tickets_move_between_lists(handler):
    redis = handler.read_model.redis
    # Two different requests (the same one twice would be merged at once as a duplicate).
    invoice = inbound("SB-3003", "eve@example.com", subject="Invoice", text="Where is my December invoice?")
    await handle(handler, [inbound("SB-3002", "eve@example.com"), invoice])
    await handle(handler, [command(AssignTicket, "SB-3002", "lena", to_team="support")])
    ticket = await handler.read_model.ticket("SB-3002")
    assert ticket["assignee"] is None and await listed_in(redis, "SB-3002") == {team_queue_key("support")}

    await handle(
        handler, [command(ClaimTicket, "SB-3002", "chloe"), command(AgentReply, "SB-3002", "chloe", text="Hi")]
    )
    await handle(handler, [command(SetStatus, "SB-3002", "chloe", status="solved")])
    solved = await handler.read_model.ticket("SB-3002")
    assert (solved["status"], solved["resolutions"], solved["public_replies"]) == ("solved", 1, 1)
    assert solved["solved_at"] and await listed_in(redis, "SB-3002") == set()

    # The customer writes again: the ticket is reopened, back in its assignee's list.
    result = await handler.handle(as_records("t.switchboard.inbound.v1", [inbound("SB-3002", "eve@example.com")]))
    result.on_published()
    assert (await handler.read_model.ticket("SB-3002"))["status"] == "open"
    assert await listed_in(redis, "SB-3002") == {agent_tickets_key("chloe")}

    # The customer rates the resolution; then the ticket is merged: closed, and refuses further commands.
    types = await handle(
        handler,
        [
            command(RateTicket, "SB-3002", "customer", resolution=1, score=2, comment="slow"),
            command(MergeTicket, "SB-3002", "chloe", into_ticket_id="SB-3003"),
            command(EscalateTicket, "SB-3002", "chloe"),
        ],
    )
    assert types == [
        "ticket.csat_rated",
        "ticket.merged",
        "ticket.status_changed",
        "ticket.message_added",
        "command.rejected",
    ]
    merged = await handler.read_model.ticket("SB-3002")
    assert (merged["status"], merged["merged_into"]) == ("closed", "SB-3003")
    assert merged["csat"] == {"score": 2, "comment": "slow", "resolution": 1}
    refused = merged["history"][-1]
    assert (refused["type"], refused["command"], refused["reason"]) == (
        "command.rejected",
        "command.escalate",
        "SB-3002 is closed",
    )
    assert await listed_in(redis, "SB-3002") == set()
    target = await handler.read_model.ticket("SB-3003")
    assert target["messages"][-1]["text"] == "SB-3002 (Cannot log in) was merged into this ticket."


async def test_any_sequence_of_commands_keeps_a_ticket_in_exactly_one_list_while_active(handler):
    """Seeded random command sequences (the same every run): after each batch, an active ticket is in
    exactly its assignee's list or, unassigned, its team's queue; a solved or closed one in none."""
    redis = handler.read_model.redis
    rng = random.Random(10)
    makers = [
        lambda t, a: command(ClaimTicket, t, a),
        lambda t, a: command(AssignTicket, t, a, to_agent=rng.choice(AGENTS)),
        lambda t, a: command(AssignTicket, t, a, to_team="support"),
        lambda t, a: command(SetStatus, t, a, status=rng.choice(["open", "pending", "on_hold", "solved", "closed"])),
        lambda t, a: command(EscalateTicket, t, a),
        lambda t, a: command(AgentReply, t, a, text="hi"),
    ]
    for number in range(6):
        ticket_id = f"SB-31{number:02d}"
        await handle(handler, [inbound(ticket_id, f"seq{number}@example.com")])
        for _ in range(12):
            batch = [rng.choice(makers)(ticket_id, rng.choice([*AGENTS, "admin"])) for _ in range(rng.randint(1, 3))]
            await handle(handler, batch)
            fields = await handler.read_model.ticket_fields(ticket_id)
            expected = set()
            if fields["status"] in ACTIVE_STATUSES:
                assignee = fields.get("assignee_id")
                expected = {agent_tickets_key(assignee) if assignee else team_queue_key(fields["team"])}
            assert await listed_in(redis, ticket_id) == expected, fields


async def test_on_the_real_broker_commands_become_events_and_a_customer_reopens_a_solved_ticket(settings):
    topics = Topics(settings.topic_prefix)
    app = create_app(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    claim = command(ClaimTicket, "SB-3201", "ben")

    async def send(topic: str, value) -> None:
        await producer.send_and_wait(topics.name(topic), value.model_dump_json().encode(), key=value.ticket_id.encode())

    async with in_process_client(app):
        await producer.start()
        try:
            route = ReplyRoute(channel="email", address="fay@example.com")
            await send(INBOUND, inbound("SB-3201", "fay@example.com", reply_route=route))
            for value in (
                claim,
                claim,  # Slack retried: one claim
                command(AgentReply, "SB-3201", "ben", text="Fixed it"),
                command(SetStatus, "SB-3201", "ben", status="solved"),
                command(AssignTicket, "SB-3201", "chloe", to_agent="ana"),  # not chloe's to hand on
            ):
                await send(COMMANDS, value)
            tickets = topics.name(TICKETS)
            await read_topic(settings.kafka_bootstrap, tickets, at_least=8, until=distinct_at_least(8))
            await send(INBOUND, inbound("SB-3201", "fay@example.com"))
            records = await read_topic(settings.kafka_bootstrap, tickets, at_least=10, until=distinct_at_least(10))
            events = distinct(records)
        finally:
            await producer.stop()
    lifecycle = [
        (event["type"], event.get("to_status") or event.get("reason") or event.get("agent_id"))
        for event in events
        if event["type"] != "ticket.message_added" and event["type"] != "ticket.created"
    ]
    assert lifecycle == [
        ("ticket.assigned", "ana"),
        ("ticket.assigned", "ben"),
        ("ticket.status_changed", "open"),
        ("ticket.status_changed", "solved"),
        ("command.rejected", "only the assignee or the team lead can hand on SB-3201"),
        ("ticket.status_changed", "open"),
    ]
    solved = next(event for event in events if event.get("to_status") == "solved")
    assert solved["resolution"] == 1 and solved["csat_route"]["address"] == "fay@example.com"
    redis = connect_redis(settings.redis_url)
    try:
        ticket = await ReadModel(redis).ticket("SB-3201")
        assert (ticket["status"], ticket["assignee"]["agent_id"], ticket["resolutions"]) == ("open", "ben", 1)
        assert ticket["history"][-1] == {
            "type": "ticket.status_changed",
            "at": ticket["history"][-1]["at"],
            "actor": "customer",
            "from": "solved",
            "to": "open",
            "reason": "the customer wrote",
        }
        assert await redis.sismember(agent_tickets_key("ben"), "SB-3201")
    finally:
        await redis.aclose()


def test_the_cli_works_a_ticket_and_the_read_api_shows_status_priority_tags_assignee_and_history(
    services: ServiceProcesses,
):
    services.start("router")
    base_url = services.start_http()
    ticket_id = post_form(base_url)
    wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda ticket: ticket["status"] == "new")
    for args in (
        ("claim", ticket_id, "--agent", "ben"),
        ("status", ticket_id, "pending", "--reason", "waiting for a screenshot", "--agent", "ben"),
        ("priority", ticket_id, "urgent"),
        ("tag", ticket_id, "--add", "vip", "--add", "login"),
        ("note", ticket_id, "looks like SSO", "--agent", "ben"),
        ("escalate", ticket_id, "--reason", "VIP"),
        ("assign", ticket_id, "--to-team", "support", "--agent", "ana"),  # refused: not ana's ticket
    ):
        result = switchboard_cli(services.settings, "ticket", *args)
        assert result.returncode == 0, result.stderr
    ticket = wait_for_ticket(
        base_url, ticket_id, API_TOKEN, lambda ticket: ticket["history"][-1]["type"] == "command.rejected"
    )
    assert (ticket["status"], ticket["priority"], ticket["tags"]) == ("pending", "urgent", ["login", "vip"])
    assert ticket["assignee"]["agent_id"] == "lena", "the escalation chain's first level"
    assert [(entry["type"], entry["actor"]) for entry in ticket["history"]] == [
        ("ticket.created", "customer"),
        ("ticket.message_added", "customer"),
        ("ticket.assigned", "system"),
        ("ticket.assigned", "ben"),
        ("ticket.status_changed", "ben"),
        ("ticket.status_changed", "ben"),
        ("ticket.priority_changed", "admin"),
        ("ticket.tags_changed", "admin"),
        ("ticket.message_added", "ben"),
        ("ticket.escalated", "admin"),
        ("ticket.assigned", "admin"),
        ("command.rejected", "ana"),
    ]
    assert ticket["history"][-1]["reason"] == f"only the assignee or the team lead can hand on {ticket_id}"
    shown = switchboard_cli(services.settings, "ticket", "show", ticket_id)
    assert shown.returncode == 0 and json.loads(shown.stdout)["history"] == ticket["history"]
    refused = switchboard_cli(services.settings, "ticket", "assign", ticket_id, "--agent", "ana")
    assert refused.returncode != 0 and "exactly one of --to-agent and --to-team" in refused.stderr


async def test_a_customer_writing_on_a_closed_ticket_opens_a_follow_up_ticket(handler):
    ids = TicketIds(handler.read_model.redis, "SB")
    chat = ["telegram:chat:7"]
    first, follows = await ids.resolve("telegram:update:1", found=None, lookup=chat, remember=chat)
    assert follows is None
    await handle(handler, [inbound(first, "gus@example.com")])
    await handle(handler, [command(SetStatus, first, "ana", status="solved")])
    # A customer message while solved still lands on the ticket (the router reopens it).
    assert await ids.resolve("telegram:update:2", found=None, lookup=chat, remember=chat) == (first, None)
    await handle(handler, [command(SetStatus, first, "ana", status="closed")])

    follow_up, follows = await ids.resolve("telegram:update:3", found=None, lookup=chat, remember=chat)
    assert follow_up != first and follows == first
    assert await ids.resolve("telegram:update:3", found=None, lookup=chat, remember=chat) == (follow_up, first)
    # Machine mail about the closed ticket stays on it; later messages of the thread join the follow-up.
    assert await ids.resolve("m:bounce", found=first, lookup=(), remember=(), follows_up=False) == (first, None)
    assert await ids.resolve("telegram:update:4", found=None, lookup=chat, remember=chat) == (follow_up, None)

    result = await handler.handle(
        as_records("t.switchboard.inbound.v1", [inbound(follow_up, "gus@example.com", follow_up_of=first)])
    )
    [created] = [record.value for record in result.publish if record.headers["event-type"] == "ticket.created"]
    assert b'"follow_up_of":"' + first.encode() in created
    ticket = await handler.read_model.ticket(follow_up)
    assert (ticket["status"], ticket["follow_up_of"]) == ("new", first)
    assert (await handler.read_model.ticket(first))["status"] == "closed"


async def test_a_customer_writing_on_a_merged_ticket_joins_the_ticket_it_was_merged_into(handler):
    ids = TicketIds(handler.read_model.redis, "SB")
    chat = ["telegram:chat:8"]
    duplicate, _ = await ids.resolve("telegram:update:11", found=None, lookup=chat, remember=chat)
    kept, _ = await ids.resolve("form:kept", found=None, lookup=(), remember=())
    # Told apart by their text, so that an agent merges them (the router would merge the same text at once).
    other = inbound(kept, "hal@example.com", subject="Invoice", text="Where is my December invoice?")
    await handle(handler, [inbound(duplicate, "hal@example.com"), other])
    await handle(handler, [command(MergeTicket, duplicate, "ana", into_ticket_id=kept)])
    assert (await handler.read_model.ticket(duplicate))["status"] == "closed"

    # The duplicate's thread (and its ID in a subject) now lead to the ticket it was merged into.
    assert await ids.resolve("telegram:update:12", found=None, lookup=chat, remember=chat) == (kept, None)
    assert await ids.resolve("email:re-subject", found=duplicate, lookup=(), remember=()) == (kept, None)
    assert await ids.resolve("telegram:update:13", found=None, lookup=chat, remember=chat) == (kept, None)

    # Once that one is closed too, the customer gets a follow-up of it, not of the dead duplicate.
    await handle(handler, [command(SetStatus, kept, "ana", status="solved")])
    await handle(handler, [command(SetStatus, kept, "ana", status="closed")])
    follow_up, follows = await ids.resolve("telegram:update:14", found=None, lookup=chat, remember=chat)
    assert follow_up not in (kept, duplicate) and follows == kept
