"""kill -9 of the router while messages flow loses nothing and assigns nothing twice."""

from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from shared.read_model import ticket_key
from shared.topics import TICKETS, Topics
from switchboard.bench.runner import unlimited_capacity
from tests.support import ServiceProcesses, decoded, read_topic

pytestmark = pytest.mark.integration

TICKETS_SENT = 120


def assigned_count(client: redis.Redis, ticket_ids: list[str]) -> int:
    pipe = client.pipeline(transaction=False)
    for ticket_id in ticket_ids:
        pipe.hexists(ticket_key(ticket_id), "assignee_id")
    return sum(pipe.execute())


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


async def test_router_sigkill_mid_stream_then_restart(services: ServiceProcesses, settings, fake_slack, tmp_path):
    # Every ticket is assigned: more than the example desk's agents take at once.
    services.extra_env["SWITCHBOARD_CONFIG"] = str(unlimited_capacity(settings.config, tmp_path))
    services.start("router")
    services.start("notifier")
    base_url = services.start_http()
    store = redis.Redis.from_url(settings.redis_url, decode_responses=True)

    def post(n: int) -> str:
        form = {"name": f"C{n}", "email": f"c{n}@example.com", "subject": f"Issue {n}", "message": "help"}
        response = httpx.post(f"{base_url}/v1/forms/contact", json=form, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()["ticket_id"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        pending = [pool.submit(post, n) for n in range(TICKETS_SENT)]
        first_ids = [future.result() for future in pending[:20]]
        wait_until(lambda: assigned_count(store, first_ids) >= 5, 60, "the router to assign its first tickets")
        services.kill("router")
        ticket_ids = [future.result() for future in pending]
    assert assigned_count(store, ticket_ids) < TICKETS_SENT, "the kill must land while work is pending"

    services.start("router")
    wait_until(lambda: assigned_count(store, ticket_ids) == TICKETS_SENT, 120, "every ticket to be assigned")

    events = decoded(
        await read_topic(
            settings.kafka_bootstrap,
            Topics(settings.topic_prefix).name(TICKETS),
            at_least=3 * TICKETS_SENT,
            # Partitions arrive one fetch at a time: wait for every ticket's assignment, not a record count.
            until=lambda records: (
                set(ticket_ids) <= {e["ticket_id"] for e in decoded(records) if e["type"] == "ticket.assigned"}
            ),
        )
    )
    assignments: dict[str, set[tuple[str, str]]] = defaultdict(set)
    created: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event["type"] == "ticket.assigned":
            assignments[event["ticket_id"]].add((event["event_id"], event["agent_id"]))
        if event["type"] == "ticket.created":
            created[event["ticket_id"]].add(event["event_id"])
    assert sorted(assignments) == sorted(ticket_ids)
    assert all(len(decisions) == 1 for decisions in assignments.values()), {
        ticket: decisions for ticket, decisions in assignments.items() if len(decisions) > 1
    }
    assert all(len(ids) == 1 for ids in created.values())
    for ticket_id in ticket_ids:
        assert store.llen(f"{ticket_key(ticket_id)}:messages") == 1

    channel_posts = fake_slack.wait_for_calls_sync(
        "chat.postMessage",
        count=TICKETS_SENT,
        timeout=120,
        predicate=lambda c: c.args["channel"] == "C0SUPPORT" and "thread_ts" not in c.args,
    )
    posts_per_ticket = defaultdict(int)
    for call in channel_posts:
        posts_per_ticket[call.args["text"].split("*")[1]] += 1
    assert posts_per_ticket == {ticket_id: 1 for ticket_id in ticket_ids}, "one Slack post per ticket"
    assert not [c for c in fake_slack.calls_to("chat.postMessage") if "thread_ts" in c.args], "nothing repeated"
