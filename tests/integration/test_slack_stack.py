"""Slack Connect through the running stack: a customer's message becomes a ticket answered in its thread."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from shared.topics import INBOUND, Topics
from tests.conftest import API_TOKEN, SLACK_SIGNING_SECRET
from tests.support import ServiceProcesses, read_topic, reply_as_agent, wait_for_ticket

pytestmark = pytest.mark.integration

SHARED_CHANNEL = "C0CUSTOMERS"


def post_signed(base_url: str, payload: dict, *, age: int = 0, secret: str = SLACK_SIGNING_SECRET) -> httpx.Response:
    body = json.dumps(payload)
    timestamp = str(int(time.time()) - age)
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }
    return httpx.post(f"{base_url}/v1/slack/events", content=body, headers=headers, timeout=30)


def customer_message(event_id: str, ts: str, text: str) -> dict:
    return {
        "type": "event_callback",
        "team_id": "T0CUSTOMER",
        "api_app_id": "A0SWITCHBOARD",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": {"type": "message", "channel": SHARED_CHANNEL, "user": "U0CUSTOMER", "text": text, "ts": ts},
    }


def test_a_slack_connect_message_is_acknowledged_and_answered_in_its_thread(services: ServiceProcesses, fake_slack):
    for name in ("router", "notifier"):
        services.start(name)
    base_url = services.start_http()
    ts = f"{int(time.time())}.000100"
    assert post_signed(base_url, customer_message("Ev001", ts, "Our export is failing")).status_code == 200
    assert post_signed(base_url, customer_message("Ev001", ts, "Our export is failing")).status_code == 200

    [ack] = fake_slack.wait_for_calls_sync(
        "chat.postMessage", timeout=30, predicate=lambda c: c.args["channel"] == SHARED_CHANNEL
    )
    assert ack.args["thread_ts"] == ts
    ticket_id = re.search(r"SB-\d+", ack.args["text"]).group(0)
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
    assert ticket["channel"] == "slack" and len(ticket["messages"]) == 1

    reply_as_agent(services.settings, ticket_id, "A fix is rolling out.")
    [answer] = fake_slack.wait_for_calls_sync(
        "chat.postMessage", timeout=30, predicate=lambda c: c.args.get("text") == "A fix is rolling out."
    )
    assert answer.args["channel"] == SHARED_CHANNEL and answer.args["thread_ts"] == ts


@pytest.mark.parametrize(("age", "secret"), [(301, SLACK_SIGNING_SECRET), (0, "wrong-secret")], ids=["stale", "wrong"])
def test_stale_or_forged_requests_are_401(services: ServiceProcesses, age, secret):
    base_url = services.start_http()
    response = post_signed(base_url, customer_message("Ev002", "1.000200", "hi"), age=age, secret=secret)
    assert response.status_code == 401


FIELD_REPORT = Path(__file__).resolve().parents[1] / "fixtures" / "field-reports" / "15-slack-file-share.json"


def test_a_shared_file_ends_up_on_the_ticket_message(services: ServiceProcesses, fake_slack):
    """The field report: a file_share event whose file used to vanish on the way to the ticket."""
    services.start("router")
    base_url = services.start_http()
    content = b"\x89PNG\r\n\x1a\n" + b"checkout error screenshot" * 100
    file = fake_slack.add_file(content, "checkout-error.png", "image/png")
    event = {**json.loads(FIELD_REPORT.read_text()), "channel": SHARED_CHANNEL, "ts": f"{int(time.time())}.000300"}
    payload = {**customer_message("Ev003", event["ts"], event["text"]), "event": {**event, "files": [file]}}
    assert post_signed(base_url, payload).status_code == 200

    topic = Topics(services.settings.topic_prefix).name(INBOUND)
    [record] = asyncio.run(read_topic(services.settings.kafka_bootstrap, topic, at_least=1))
    ticket_id = record.key.decode()
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: len(t["messages"]) == 1)
    [message] = ticket["messages"]
    assert message["text"] == "Checkout fails with this error"
    [attachment] = message["attachments"]
    assert attachment["filename"] == "checkout-error.png" and attachment["content_type"] == "image/png"
    assert attachment["size"] == len(content) and attachment["sha256"] == hashlib.sha256(content).hexdigest()
    stored = services.settings.data_dir / "attachments" / attachment["sha256"][:2] / attachment["sha256"][2:4]
    assert (stored / attachment["sha256"]).read_bytes() == content
