"""A ticket's whole journey on the real broker: intake → router → SLA → notifier → Slack.

Every service runs as its own process (`switchboard run NAME`); Slack is a fake HTTP server.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from shared.settings import EXAMPLE_CONFIG
from shared.topics import INBOUND, TICKETS, Topics
from tests.conftest import API_TOKEN, free_port
from tests.integration.lost_redis import without_moving_times
from tests.support import ServiceProcesses, decoded, read_topic, switchboard_cli, wait_for_ticket

pytestmark = pytest.mark.integration

FORM = {"name": "Ana", "email": "ana@example.com", "subject": "Cannot log in", "message": "My password is refused."}


def post_form(base_url: str, form: dict = FORM, **headers: str) -> dict:
    response = httpx.post(f"{base_url}/v1/forms/contact", json=form, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def is_routed(ticket: dict) -> bool:
    return ticket["assignee"] is not None and ticket["sla"]["first_response_due"] is not None


def test_a_form_reaches_the_assignee_in_slack_and_the_read_model(services: ServiceProcesses, fake_slack):
    for name in ("router", "sla", "notifier"):
        services.start(name)
    base_url = services.start_http()

    ticket_id = post_form(base_url)["ticket_id"]

    posts = fake_slack.wait_for_calls_sync(
        "chat.postMessage", count=2, timeout=30, predicate=lambda call: ticket_id in call.args.get("text", "")
    )
    channel_post = next(call for call in posts if call.args["channel"] == "C0SUPPORT")
    assert "<@U0ANA>" in channel_post.args["text"] and "Cannot log in" in channel_post.args["text"]
    assert any(call.args["channel"] == "U0ANA" for call in posts), "the assignee gets a DM"
    assert all(call.token == "xoxb-test" for call in posts)

    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, is_routed)
    assert ticket["contact"]["emails"] == ["ana@example.com"]
    assert ticket["assignee"]["slack_user_id"] == "U0ANA"
    created = datetime.fromisoformat(ticket["created_at"])
    assert datetime.fromisoformat(ticket["sla"]["first_response_due"]) == created + timedelta(hours=4)
    assert [message["text"] for message in ticket["messages"]] == [FORM["message"]]


def test_contacts_dedupe_by_email_and_idempotency_keys_by_message(services: ServiceProcesses):
    services.start("router")
    base_url = services.start_http()
    first = post_form(base_url)["ticket_id"]
    second = post_form(base_url, {**FORM, "email": "ANA@example.com", "subject": "Another thing"})["ticket_id"]
    # A third request (the first one again would be merged into it as a duplicate), posted twice.
    invoice = {**FORM, "subject": "Invoice", "message": "Where is my December invoice?"}
    retried = [post_form(base_url, invoice, **{"Idempotency-Key": "k-1"}) for _ in range(2)]
    assert retried[0] == retried[1]

    tickets = [
        wait_for_ticket(base_url, tid, API_TOKEN, lambda t: t["assignee"] is not None)
        for tid in (first, second, retried[0]["ticket_id"])
    ]
    assert len({ticket["contact"]["id"] for ticket in tickets}) == 1
    contact = httpx.get(
        f"{base_url}/v1/contacts/{tickets[0]['contact']['id']}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ).json()
    assert contact["tickets"] == sorted([first, second, retried[0]["ticket_id"]])
    assert len(tickets[2]["messages"]) == 1


def test_round_robin_shares_tickets_among_the_team(services: ServiceProcesses):
    services.start("router")
    base_url = services.start_http()
    ids = [post_form(base_url, {**FORM, "email": f"c{n}@example.com"})["ticket_id"] for n in range(6)]
    assignees = [
        wait_for_ticket(base_url, tid, API_TOKEN, lambda t: t["assignee"] is not None)["assignee"]["agent_id"]
        for tid in ids
    ]
    assert sorted(assignees) == ["ana", "ana", "ben", "ben", "chloe", "chloe"]


def test_sla_warns_then_breaches_in_the_tickets_slack_thread(services: ServiceProcesses, fake_slack, tmp_path: Path):
    quick = tmp_path / "quick-sla.yaml"
    quick.write_text(
        EXAMPLE_CONFIG.read_text()
        .replace("first_response: 4h", "first_response: 3s")
        .replace("warn_at: [0.75]", "warn_at: [0.5]")
    )
    for name in ("router", "sla", "notifier"):
        services.start(name, SWITCHBOARD_CONFIG=str(quick))
    base_url = services.start_http(SWITCHBOARD_CONFIG=str(quick))
    ticket_id = post_form(base_url)["ticket_id"]

    [root] = fake_slack.wait_for_calls_sync(
        "chat.postMessage",
        timeout=30,
        predicate=lambda c: (
            c.args["channel"] == "C0SUPPORT" and "thread_ts" not in c.args and ticket_id in c.args["text"]
        ),
    )
    root_ts = root.response["ts"]
    in_thread = fake_slack.wait_for_calls_sync(
        "chat.postMessage", count=2, timeout=30, predicate=lambda c: c.args.get("thread_ts") == root_ts
    )
    warning, breach = sorted(in_thread, key=lambda call: call.at)
    assert "50%" in warning.args["text"] and "<@U0ANA>" in warning.args["text"]
    assert "breached" in breach.args["text"] and "<@U0LENA>" in breach.args["text"], "breaches go to the team lead"
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["sla"]["first_response_status"] == "breached")
    assert ticket["sla"]["first_response_status"] == "breached"


def test_slack_rate_limits_are_waited_out_not_dropped(services: ServiceProcesses, fake_slack):
    fake_slack.rate_limit_next("chat.postMessage", count=2, retry_after=1)
    services.start("router")
    services.start("notifier")
    base_url = services.start_http()
    ticket_id = post_form(base_url)["ticket_id"]
    fake_slack.wait_for_calls_sync(
        "chat.postMessage", count=2, timeout=30, predicate=lambda c: ticket_id in c.args.get("text", "")
    )
    limited = [call for call in fake_slack.calls_to("chat.postMessage") if call.rate_limited]
    assert len(limited) == 2


async def test_invalid_messages_go_to_the_dlq_with_their_origin_and_the_router_goes_on(
    services: ServiceProcesses, settings
):
    from aiokafka import AIOKafkaProducer

    topics = Topics(settings.topic_prefix)
    ops_port = free_port()
    services.start("router", SWITCHBOARD_OPS_PORT=str(ops_port))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.name(INBOUND), b'{"type": "inbound.message", "text": 42}', key=b"SB-1")
    finally:
        await producer.stop()
    base_url = services.start_http()
    ticket_id = post_form(base_url)["ticket_id"]

    [dead] = await read_topic(settings.kafka_bootstrap, topics.dlq(INBOUND), at_least=1)
    headers = {key: value.decode() for key, value in dead.headers}
    assert headers["x-original-topic"] == topics.name(INBOUND)
    assert headers["x-original-offset"] == "0"
    assert headers["x-consumer-group"] == topics.group("switchboard-router")
    assert "invalid message" in headers["x-error-reason"] and "ticket_id" in headers["x-error-reason"]
    assert dead.value == b'{"type": "inbound.message", "text": 42}'
    wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
    ticket_events = decoded(await read_topic(settings.kafka_bootstrap, topics.name(TICKETS), at_least=3))
    assert {event["ticket_id"] for event in ticket_events} == {ticket_id}

    ops = f"http://127.0.0.1:{ops_port}"
    ready = httpx.get(f"{ops}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "kafka": True,
        "redis": True,
        "state": True,
        topics.group("switchboard-router"): {"ok": True, "problems": [], "stopped_partitions": {}},
    }
    metrics = httpx.get(f"{ops}/metrics", timeout=10).text
    labels = f'group="{topics.group("switchboard-router")}",topic="{topics.name(INBOUND)}"'
    assert f"switchboard_dead_lettered_messages_total{{{labels}}} 1.0" in metrics
    assert f"switchboard_consumed_records_total{{{labels}}} 2.0" in metrics


def test_replay_rebuilds_the_read_model_from_kafka_alone(services: ServiceProcesses, settings):
    for name in ("router", "sla"):
        services.start(name)
    base_url = services.start_http()
    ticket_id = post_form(base_url)["ticket_id"]
    before = wait_for_ticket(base_url, ticket_id, API_TOKEN, is_routed)
    services.stop_all()

    redis.Redis.from_url(settings.redis_url).flushdb()
    result = switchboard_cli(settings, "replay")
    assert result.returncode == 0, result.stderr
    assert "replayed 4 ticket events" in result.stdout  # created, message, assigned, deadline
    base_url = services.start_http()
    after = wait_for_ticket(base_url, ticket_id, API_TOKEN, is_routed)
    assert without_moving_times(after) == without_moving_times(before)
