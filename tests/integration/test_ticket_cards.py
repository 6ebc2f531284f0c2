"""The ticket card in Slack through the running stack: posted with its eight buttons, updated in place after a
change, rejections shown to their agent, agents' thread replies marked ✅ or ⚠️ (real broker, Redis, fake Slack).

The router's lifecycle is not needed here: the test writes what it would (the ticket's hash fields) and
publishes its events on the tickets topic, as the router does.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest
import yaml
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from slack_sdk.web.async_client import AsyncWebClient

from services.notifier.cards import ACTION_IDS
from shared.config import load_config
from shared.conversations import conversation_ticket
from shared.events import (
    CommandRejected,
    ContactSummary,
    MessageAdded,
    ReplyRoute,
    SlackOrigin,
    SlaWarning,
    StatusChanged,
    TicketAssigned,
    TicketQueued,
)
from shared.publisher import Outgoing, Publisher
from shared.read_model import UNDELIVERABLE_KEY, ticket_key
from shared.settings import EXAMPLE_CONFIG
from shared.topics import TICKETS, Topics, ensure_topics
from tests.conftest import SLACK_TOKEN
from tests.integration.test_replies import post_form
from tests.support import ServiceProcesses, decoded, read_topic

pytestmark = pytest.mark.integration

CHANNEL = "C0SUPPORT"


async def publish(settings, *events) -> None:
    """Publishes ticket events as the router does (keyed by ticket ID, with their headers)."""
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics)
    publisher = Publisher(settings.kafka_bootstrap, client_id="test", registry=CollectorRegistry())
    await publisher.start()
    try:
        await publisher.publish_many([Outgoing.event(topics.name(TICKETS), e.ticket_id, e) for e in events])
    finally:
        await publisher.stop()


def envelope(ticket_id: str) -> dict:
    return {"event_id": uuid.uuid4(), "occurred_at": datetime.now(UTC), "ticket_id": ticket_id}


async def announced(fake_slack, ticket_id: str):
    """The ticket's card in the team channel and in its assignee's DM, once both are posted."""
    [card] = await fake_slack.wait_for_calls(
        "chat.postMessage", predicate=lambda c: c.args["channel"] == CHANNEL and ticket_id in c.args["text"]
    )
    [dm] = await fake_slack.wait_for_calls(
        "chat.postMessage", predicate=lambda c: c.args["channel"].startswith("U0") and ticket_id in c.args["text"]
    )
    return card.response, dm.response


async def sent_events(settings, purpose: str, *, deliveries: int = 1, timeout: float = 30) -> list[dict]:
    """The notification.sent events of `purpose` on the tickets topic, once they record `deliveries` deliveries."""
    topic = Topics(settings.topic_prefix).name(TICKETS)
    deadline = time.monotonic() + timeout
    while True:
        events = decoded(await read_topic(settings.kafka_bootstrap, topic, at_least=1, timeout=1))
        sent = [e for e in events if e["type"] == "notification.sent" and e["purpose"] == purpose]
        if len({event["key"] for event in sent}) >= deliveries or time.monotonic() > deadline:
            return sent


def buttons(message: dict) -> list[tuple[str, str]]:
    return [
        (element["action_id"], element["value"])
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


async def test_a_form_tickets_card_has_the_eight_buttons_and_is_updated_in_place_after_a_change(
    services: ServiceProcesses, settings, fake_slack
):
    for name in ("router", "notifier"):
        services.start(name)
    ticket_id = post_form(services.start_http())
    card, dm = await announced(fake_slack, ticket_id)
    redis = Redis.from_url(settings.redis_url, decode_responses=True)

    for posted in (card, dm):
        message = fake_slack.message(posted["channel"], posted["ts"])
        assert buttons(message) == [(action_id, ticket_id) for action_id in ACTION_IDS]
        assert "Cannot log in" in json.dumps(message["blocks"]) and "New" in json.dumps(message["blocks"])
    # The card is the ticket's thread: its notification.sent leads agents' thread replies to the ticket.
    [sent] = await sent_events(settings, "announcement")
    assert sent["conversations"] == [f"slack:{CHANNEL}:{card['ts']}"]
    assert await conversation_ticket(redis, [f"slack:{CHANNEL}:{card['ts']}"]) == ticket_id

    fields = await redis.hgetall(ticket_key(ticket_id))
    await redis.hset(ticket_key(ticket_id), "status", "pending")
    await redis.aclose()
    await publish(
        settings,
        StatusChanged(
            **envelope(ticket_id),
            from_status="new",
            to_status="pending",
            actor="ben",
            team="support",
            assignee_id=fields["assignee_id"],
        ),
    )

    for posted in (card, dm):
        [update] = await fake_slack.wait_for_calls(
            "chat.update", predicate=lambda c, p=posted: c.args["channel"] == p["channel"] and c.args["ts"] == p["ts"]
        )
        message = fake_slack.message(posted["channel"], posted["ts"])
        assert "Pending" in json.dumps(message["blocks"]) and len(buttons(message)) == 8

    # Another agent claims it: the channel's card shows them (updated, not posted again), their DM gets the card.
    claimer = "U0CHLOE" if fields["assignee_slack_user_id"] != "U0CHLOE" else "U0ANA"
    agent = next(agent for agent in load_config(settings.config).agents if agent.slack_user_id == claimer)
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    await redis.hset(
        ticket_key(ticket_id),
        mapping={"assignee_id": agent.id, "assignee_name": agent.name, "assignee_slack_user_id": claimer},
    )
    await redis.aclose()
    claim = TicketAssigned(
        **envelope(ticket_id),
        team="support",
        agent_id=agent.id,
        agent_name=agent.name,
        slack_user_id=claimer,
        subject="Cannot log in",
        contact=ContactSummary(contact_id=fields["contact_id"]),
        actor=agent.id,
        previous_agent_id=fields["assignee_id"],
    )
    await publish(settings, claim)
    [new_dm] = await fake_slack.wait_for_calls("chat.postMessage", predicate=lambda c: c.args["channel"] == claimer)
    assert buttons(fake_slack.message(new_dm.response["channel"], new_dm.response["ts"]))[0] == ("sb_claim", ticket_id)
    await fake_slack.wait_for_calls(
        "chat.update", predicate=lambda c: c.args["ts"] == card["ts"] and f"<@{claimer}>" in c.args["text"]
    )
    channel_posts = [c for c in fake_slack.calls_to("chat.postMessage") if c.args["channel"] == CHANNEL]
    assert len(channel_posts) == 1, "one card per ticket in the channel"


async def test_a_rejected_command_is_shown_to_its_agent_alone(services: ServiceProcesses, settings, fake_slack):
    services.start("notifier")
    origin = SlackOrigin(user_id="U0BEN", channel_id=CHANNEL)
    await publish(
        settings,
        CommandRejected(
            **envelope("SB-4242"),
            command_id=uuid.uuid4(),
            command_type="command.assign",
            agent_id="ben",
            reason="only the team lead can reassign a ticket of someone else",
            origin=origin,
        ),
    )

    [ephemeral] = await fake_slack.wait_for_calls("chat.postEphemeral")
    assert ephemeral.args["channel"] == CHANNEL and ephemeral.args["user"] == "U0BEN"
    assert ephemeral.args["text"] == "only the team lead can reassign a ticket of someone else"


async def test_an_agents_thread_reply_reaches_the_customer_and_is_marked_or_warned(
    services: ServiceProcesses, settings, fake_slack, smtp_sink
):
    for name in ("router", "notifier"):
        services.start(name)
    ticket_id = post_form(services.start_http())
    card, _ = await announced(fake_slack, ticket_id)
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    route = ReplyRoute.model_validate_json(await redis.hget(ticket_key(ticket_id), "reply_route"))
    # The agents' messages in the card's thread, as Slack holds them.
    slack = AsyncWebClient(token=SLACK_TOKEN, base_url=fake_slack.base_url)
    typed = [(await slack.chat_postMessage(channel=CHANNEL, thread_ts=card["ts"], text=text))["ts"]
             for text in ("We reset your password.", "And again.")]  # fmt: skip

    def reply(text: str, message_ts: str) -> MessageAdded:
        origin = SlackOrigin(user_id="U0BEN", channel_id=CHANNEL, message_ts=message_ts, thread_ts=card["ts"])
        return MessageAdded(
            **envelope(ticket_id),
            message_id=uuid.uuid4(),
            author="agent",
            agent_id="ben",
            channel="email",
            text=text,
            reply_route=route,
            received_at=datetime.now(UTC),
            origin=origin,
        )

    await publish(settings, reply("We reset your password.", typed[0]))
    [mail] = smtp_sink.wait_for(lambda mail: "We reset your password." in mail.message.get_content())
    assert mail.message["Subject"] == f"[{ticket_id}] Re: Cannot log in"
    await fake_slack.wait_for_calls("reactions.add", predicate=lambda c: c.args["name"] == "white_check_mark")
    assert [r["name"] for r in fake_slack.message(CHANNEL, typed[0])["reactions"]] == ["white_check_mark"]

    # The address bounced since: the next reply is not sent, and the agent is told why.
    await redis.sadd(UNDELIVERABLE_KEY, route.address)
    await redis.aclose()
    await publish(settings, reply("And again.", typed[1]))
    [why] = await fake_slack.wait_for_calls("chat.postEphemeral")
    assert why.args["user"] == "U0BEN" and "bounced" in why.args["text"]
    await fake_slack.wait_for_calls("reactions.add", predicate=lambda c: c.args["name"] == "warning")
    assert [r["name"] for r in fake_slack.message(CHANNEL, typed[1])["reactions"]] == ["warning"]
    assert len(smtp_sink.received) == 2, "the acknowledgement and the first reply"
    # Typed in the thread: not mirrored back into it.
    assert not [c for c in fake_slack.calls_to("chat.postMessage") if "replied:" in c.args.get("text", "")]


async def test_a_ticket_handed_to_another_teams_queue_gets_its_card_and_thread_there(
    services: ServiceProcesses, settings, fake_slack, tmp_path
):
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["teams"].append(
        {
            "id": "billing",
            "name": "Billing",
            "slack_channel": "C0BILLING",
            "members": ["chloe"],
            "sla_policy": "standard",
        }
    )
    path = tmp_path / "two-teams.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    for name in ("router", "notifier"):
        services.start(name, SWITCHBOARD_CONFIG=str(path))
    ticket_id = post_form(services.start_http())
    card, dm = await announced(fake_slack, ticket_id)
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    fields = await redis.hgetall(ticket_key(ticket_id))

    # The lead hands it to billing's queue: the router's read model first, then its event.
    await redis.hset(ticket_key(ticket_id), "team", "billing")
    await redis.hdel(ticket_key(ticket_id), "assignee_id", "assignee_name", "assignee_slack_user_id")
    await publish(
        settings,
        TicketQueued(**envelope(ticket_id), team="billing", actor="lena", previous_agent_id=fields["assignee_id"]),
    )

    [billing_card] = await fake_slack.wait_for_calls(
        "chat.postMessage", predicate=lambda c: c.args["channel"] == "C0BILLING" and ticket_id in c.args["text"]
    )
    billing = billing_card.response
    assert buttons(fake_slack.message("C0BILLING", billing["ts"])) == [
        (action_id, ticket_id) for action_id in ACTION_IDS
    ]
    # It is the ticket's thread in billing's channel: agents' replies there find the ticket.
    sent = await sent_events(settings, "announcement", deliveries=2)
    assert f"slack:C0BILLING:{billing['ts']}" in [key for event in sent for key in event["conversations"]]
    assert await conversation_ticket(redis, [f"slack:C0BILLING:{billing['ts']}"]) == ticket_id
    # The cards it left (support's channel, the previous assignee's DM) show where it went.
    for posted in (card, dm):
        await fake_slack.wait_for_calls(
            "chat.update",
            predicate=lambda c, p=posted: c.args["ts"] == p["ts"] and "Billing" in json.dumps(c.args["blocks"]),
        )

    # Its thread posts go under billing's card, not support's.
    await publish(
        settings,
        SlaWarning(**envelope(ticket_id), metric="first_response", due_at=datetime.now(UTC), fraction=0.75),
    )
    [warning] = await fake_slack.wait_for_calls(
        "chat.postMessage", predicate=lambda c: "first-response time" in c.args.get("text", "")
    )
    assert (warning.args["channel"], warning.args["thread_ts"]) == ("C0BILLING", billing["ts"])
    await redis.aclose()
