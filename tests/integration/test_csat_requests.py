"""CSAT requests through the running notifier, on the customer's own channel (real broker and Redis, fake
Slack, SMTP sink and fake Telegram): a resolution asks once; a low rating pings the team lead in the thread.

The router's lifecycle is not needed here: the test publishes the `ticket.status_changed` it would.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from redis.asyncio import Redis

from shared.conversations import chat_channel
from shared.csat import CsatSubject, CsatTokens, csat_secret
from shared.events import CsatRated, ReplyRoute, StatusChanged
from shared.read_model import ticket_key
from tests.integration.test_replies import post_form
from tests.integration.test_ticket_cards import CHANNEL, announced, envelope, publish, sent_events
from tests.support import ServiceProcesses

pytestmark = pytest.mark.integration


def solved(ticket_id: str, route: ReplyRoute, resolution: int = 1) -> StatusChanged:
    return StatusChanged(
        **envelope(ticket_id),
        from_status="open",
        to_status="solved",
        actor="ben",
        team="support",
        assignee_id="ben",
        resolution=resolution,
        csat_route=route,
    )


async def test_a_resolved_email_ticket_gets_a_rating_link_once_and_a_low_rating_pings_the_lead(
    services: ServiceProcesses, settings, fake_slack, smtp_sink
):
    for name in ("router", "notifier"):
        services.start(name)
    ticket_id = post_form(services.start_http())
    card, _ = await announced(fake_slack, ticket_id)
    [acknowledgement] = smtp_sink.wait_for(lambda mail: ticket_id in mail.message["Subject"])
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    route = ReplyRoute.model_validate_json(await redis.hget(ticket_key(ticket_id), "reply_route"))
    await redis.hset(ticket_key(ticket_id), mapping={"status": "solved", "resolutions": "1"})
    await redis.aclose()
    request = solved(ticket_id, route)

    await publish(settings, request, request)  # delivered twice: asked once

    [mail] = smtp_sink.wait_for(lambda mail: "/v1/csat/" in mail.message.get_content())
    assert mail.recipients == ["ana@example.com"] and mail.message["Subject"] == f"[{ticket_id}] Re: Cannot log in"
    token = re.search(r"/v1/csat/([^\s?]+)", mail.message.get_content()).group(1)
    assert CsatTokens(csat_secret(settings)).read(token) == CsatSubject(ticket_id, 1)
    # The rating request is part of the customer's thread: an answer to it finds the ticket.
    assert mail.message["X-Switchboard-Ticket"] == ticket_id
    await fake_slack.wait_for_calls("chat.update", predicate=lambda c: c.args["ts"] == card["ts"])
    assert "Solved" in json.dumps(fake_slack.message(CHANNEL, card["ts"])["blocks"])

    rated = CsatRated(**envelope(ticket_id), resolution=1, score=2, comment="Slow", team="support")
    await publish(settings, rated)
    [ping] = await fake_slack.wait_for_calls("chat.postMessage", predicate=lambda c: "rated" in c.args["text"])
    assert ping.args["thread_ts"] == card["ts"] and "<@U0LENA>" in ping.args["text"] and "2/5" in ping.args["text"]
    # (A redelivered delivery's record is published again, with the same ID.)
    sent = await sent_events(settings, "csat", deliveries=2)
    assert {event["key"] for event in sent} == {f"{request.event_id}:csat", f"{rated.event_id}:low-score"}
    assert len([m for m in smtp_sink.received if "/v1/csat/" in m.message.get_content()]) == 1
    assert acknowledgement is not mail


async def test_telegram_web_chat_and_slack_connect_customers_are_asked_with_buttons(
    services: ServiceProcesses, settings, fake_slack, fake_telegram
):
    services.start("notifier")
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    frames = redis.pubsub()
    await frames.subscribe(chat_channel("SB-3002"))

    await publish(
        settings,
        solved("SB-3001", ReplyRoute(channel="telegram", address="4242", reply_to_id="8"), resolution=2),
        solved("SB-3002", ReplyRoute(channel="chat", address="SB-3002")),
        solved("SB-3003", ReplyRoute(channel="slack", address="C0CUSTOMERS", reply_to_id="1700000000.000100")),
    )

    [asked] = await fake_telegram.wait_for_calls("sendMessage")
    [row] = asked.args["reply_markup"]["inline_keyboard"]
    assert [button["callback_data"] for button in row] == [f"csat:SB-3001:2:{score}" for score in range(1, 6)]
    assert str(asked.args["chat_id"]) == "4242" and "SB-3001" in asked.args["text"]

    [slack] = await fake_slack.wait_for_calls(
        "chat.postMessage", predicate=lambda c: c.args["channel"] == "C0CUSTOMERS"
    )
    assert slack.args["thread_ts"] == "1700000000.000100"
    elements = [
        e for block in slack.response["message"]["blocks"] if block["type"] == "actions" for e in block["elements"]
    ]
    assert [(e["action_id"], e["value"]) for e in elements] == [("sb_csat", f"SB-3003:1:{s}") for s in range(1, 6)]

    async with asyncio.timeout(20):
        async for message in frames.listen():
            if message["type"] == "message":
                break
    assert json.loads(message["data"]) == {
        "type": "csat",
        "ticket_id": "SB-3002",
        "resolution": 1,
        "scores": [1, 2, 3, 4, 5],
    }
    await frames.aclose()
    await redis.aclose()
