"""Telegram through the running stack: webhook → ticket → acknowledgement and replies on Telegram."""

from __future__ import annotations

import re

import httpx
import pytest

from shared.topics import INBOUND, Topics
from tests.conftest import API_TOKEN, TELEGRAM_SECRET
from tests.support import ServiceProcesses, reply_as_agent, topic_size, wait_for_ticket

pytestmark = pytest.mark.integration

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def update(update_id: int, message_id: int, text: str) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1764000000,
            "chat": {"id": 4242, "type": "private", "first_name": "Ana"},
            "from": {"id": 4242, "is_bot": False, "first_name": "Ana", "username": "ana_t"},
            "text": text,
        },
    }


def post_update(base_url: str, body: dict, secret: str | None = TELEGRAM_SECRET) -> httpx.Response:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    return httpx.post(f"{base_url}/v1/telegram/webhook", json=body, headers=headers, timeout=30)


def test_a_telegram_message_becomes_a_ticket_acknowledged_and_answered_on_telegram(
    services: ServiceProcesses, fake_telegram
):
    for name in ("router", "notifier"):
        services.start(name)
    base_url = services.start_http()

    assert post_update(base_url, update(1001, 7, "My card was charged twice")).status_code == 200
    [ack] = fake_telegram.wait_for_calls_sync("sendMessage", timeout=30)
    ticket_id = re.search(r"SB-\d+", ack.args["text"]).group(0)
    assert str(ack.args["chat_id"]) == "4242"
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
    assert ticket["channel"] == "telegram" and ticket["contact"]["telegram_user_ids"] == ["4242"]

    # Telegram redelivers the same update: nothing new.
    assert post_update(base_url, update(1001, 7, "My card was charged twice")).status_code == 200
    assert post_update(base_url, update(1002, 8, "It was on Monday")).status_code == 200
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: len(t["messages"]) >= 2)
    assert [m["text"] for m in ticket["messages"]] == ["My card was charged twice", "It was on Monday"]

    reply_as_agent(services.settings, ticket_id, "Refund issued.")
    [answer] = fake_telegram.wait_for_calls_sync(
        "sendMessage", timeout=30, predicate=lambda call: call.args["text"] == "Refund issued."
    )
    assert answer.reply_to_message_id == 8, "the reply quotes the customer's latest message"
    assert len(fake_telegram.calls_to("sendMessage")) == 2, "one acknowledgement, one reply"


@pytest.mark.parametrize("secret", ["wrong-secret", None], ids=["wrong", "missing"])
async def test_a_bad_webhook_secret_is_401_and_publishes_nothing(services: ServiceProcesses, settings, secret):
    base_url = services.start_http()
    response = post_update(base_url, update(2001, 1, "hello"), secret=secret)
    assert response.status_code == 401
    assert await topic_size(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(INBOUND)) == 0
