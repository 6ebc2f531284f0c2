"""Scale-out: two routers and two notifiers share the load; one of each is killed with SIGKILL
mid-load and restarted, and still every ticket is created, assigned, announced and acknowledged once.

Each is frozen (SIGSTOP) wherever it happened to be before it is killed, while the load goes on, so
that it provably dies holding work (records of its partitions not committed) the others take over.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
import redis

from shared.read_model import ticket_key
from shared.topics import INBOUND, TICKETS, Topics, partitions_of
from switchboard.bench.runner import unlimited_capacity
from tests.support import (
    ServiceProcesses,
    committed_offsets,
    decoded,
    end_offsets,
    partitions_held,
    read_topic,
    topic_size,
    wait_until_consumed,
)

pytestmark = pytest.mark.integration

TICKETS_SENT = 300
# The first kill comes once this many tickets are announced.
KILL_AFTER = 30
# How much the other instances do while the one about to be killed is frozen.
FROZEN_PROGRESS = 10
ROUTERS, NOTIFIERS = "switchboard-router", "switchboard-notifier"
# Deliveries the killed notifier left half-made wait this long for it; the calls here take milliseconds.
LEASE = {"SWITCHBOARD_DELIVERY_INTENT_LEASE_SECONDS": "10"}


def post_form(base_url: str, n: int) -> str:
    form = {"name": f"Customer {n}", "email": f"c{n}@example.com", "subject": f"Issue {n}", "message": f"help {n}"}
    response = httpx.post(f"{base_url}/v1/forms/contact", json=form, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()["ticket_id"]


def posted(futures: list[Future[str]]) -> list[str]:
    return [future.result() for future in futures if future.done()]


def assigned_count(store: redis.Redis, ticket_ids: list[str]) -> int:
    pipe = store.pipeline(transaction=False)
    for ticket_id in ticket_ids:
        pipe.hexists(ticket_key(ticket_id), "assignee_id")
    return sum(pipe.execute())


def announcements(fake_slack) -> list:
    return [
        call
        for call in fake_slack.calls_to("chat.postMessage")
        if call.ok and call.args["channel"] == "C0SUPPORT" and "thread_ts" not in call.args
    ]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Kill:
    """An instance killed (SIGKILL): the partitions each member held just before, and the records
    each partition had that the group had not committed when it died."""

    group_id: str
    topic: str
    held: dict[str, set[int]]
    pending: dict[int, int]

    async def assert_landed_on_pending_work(self, bootstrap: str) -> None:
        """The killed member (the one gone from the group since) left work behind for the others."""
        now = await two_members(bootstrap, self.group_id, self.topic)
        [killed] = [member for member in self.held if member not in now]
        assert any(self.pending[partition] for partition in self.held[killed]), (
            f"the kill in {self.group_id} left no work behind: {self.pending} on {self.held[killed]}"
        )


async def two_members(bootstrap: str, group_id: str, topic: str, timeout: float = 60) -> dict[str, set[int]]:
    """Waits until two members of the group share all of `topic`'s partitions; what each holds."""
    partitions = len(await partitions_of(bootstrap, topic))
    deadline = time.monotonic() + timeout
    while True:
        held = {member: mine for member, mine in (await partitions_held(bootstrap, group_id, topic)).items() if mine}
        if len(held) == 2 and len(set().union(*held.values())) == partitions:
            return held
        if time.monotonic() > deadline:
            raise AssertionError(f"{group_id} has not shared {topic} between two members in {timeout}s: {held}")
        await asyncio.sleep(0.2)


async def kill(
    services: ServiceProcesses, bootstrap: str, instance: str, group_id: str, topic: str, progress: Callable[[], int]
) -> Kill:
    """Kills `instance` mid-load: it is frozen (SIGSTOP) wherever it was until the others have made
    FROZEN_PROGRESS more progress, so that its partitions hold work, then killed (SIGKILL)."""
    held = await two_members(bootstrap, group_id, topic)
    services.running[instance].send_signal(signal.SIGSTOP)
    committed = await committed_offsets(bootstrap, group_id, topic)
    start = progress()
    wait_until(lambda: progress() >= start + FROZEN_PROGRESS, 60, f"progress while {instance} is frozen")
    ends = await end_offsets(bootstrap, topic)
    services.kill(instance)
    return Kill(group_id, topic, held, {partition: ends[partition] - committed[partition] for partition in ends})


async def test_two_routers_and_two_notifiers_survive_a_kill_of_one_of_each(
    services: ServiceProcesses, settings, fake_slack, smtp_sink, tmp_path
):
    # Every ticket is assigned: more than the example desk's agents take at once.
    services.extra_env["SWITCHBOARD_CONFIG"] = str(unlimited_capacity(settings.config, tmp_path))
    topics = Topics(settings.topic_prefix)
    inbound, tickets, bootstrap = topics.name(INBOUND), topics.name(TICKETS), settings.kafka_bootstrap
    services.start("router")
    services.start("router", instance="router-2")
    services.start("notifier", **LEASE)
    services.start("notifier", instance="notifier-2", **LEASE)
    services.start("sla")
    base_url = services.start_http()
    routers, notifiers = topics.group(ROUTERS), topics.group(NOTIFIERS)
    await two_members(bootstrap, routers, inbound)
    await two_members(bootstrap, notifiers, tickets)
    store = redis.Redis.from_url(settings.redis_url, decode_responses=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(post_form, base_url, n) for n in range(TICKETS_SENT)]
        # The notifier first: while a router is down, its partitions' tickets (the same partitions of
        # the ticket topic: both are keyed by ticket ID) bring the notifiers nothing new.
        wait_until(lambda: len(announcements(fake_slack)) >= KILL_AFTER, 60, "the first announcements")
        notifier_killed = await kill(
            services, bootstrap, "notifier-2", notifiers, tickets, lambda: len(announcements(fake_slack))
        )
        router_killed = await kill(
            services, bootstrap, "router-2", routers, inbound, lambda: assigned_count(store, posted(futures))
        )
        services.start("router", instance="router-2")
        services.start("notifier", instance="notifier-2", **LEASE)
        ticket_ids = [future.result() for future in futures]

    await wait_until_consumed(bootstrap, routers, inbound, timeout=120)
    await wait_until_consumed(bootstrap, topics.group("switchboard-sla"), tickets, timeout=60)
    await wait_until_consumed(bootstrap, notifiers, tickets, timeout=120)
    await router_killed.assert_landed_on_pending_work(bootstrap)
    await notifier_killed.assert_landed_on_pending_work(bootstrap)

    events = decoded(await read_topic(bootstrap, tickets, at_least=await topic_size(bootstrap, tickets)))
    event_ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    assignments: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for event in events:
        event_ids[event["ticket_id"], event["type"]].add(event["event_id"])
        if event["type"] == "ticket.assigned":
            assignments[event["ticket_id"]].add((event["event_id"], event["agent_id"]))
    assert len(set(ticket_ids)) == TICKETS_SENT
    for kind in ("ticket.created", "ticket.message_added", "ticket.assigned"):
        per_ticket = {ticket_id: len(event_ids[ticket_id, kind]) for ticket_id in ticket_ids}
        assert per_ticket == dict.fromkeys(ticket_ids, 1), f"one {kind} event ID per ticket"
    assert {ticket_id: len(assignments[ticket_id]) for ticket_id in ticket_ids} == dict.fromkeys(ticket_ids, 1)

    channel_posts = Counter(call.args["text"].split("*")[1] for call in announcements(fake_slack))
    assert channel_posts == dict.fromkeys(ticket_ids, 1), "one announcement per ticket"
    dms = Counter(
        call.args["text"].split("*")[1]
        for call in fake_slack.calls_to("chat.postMessage")
        if call.ok and call.args["channel"].startswith("U")
    )
    assert dms == dict.fromkeys(ticket_ids, 1), "one DM per ticket"
    assert not [call for call in fake_slack.calls_to("chat.postMessage") if "thread_ts" in call.args]

    # SMTP cannot tell whether a message the killed notifier was handing over got through (RFC 1047):
    # such an acknowledgement goes out again after the lease as the very same message (its Message-ID
    # follows from its delivery key), which mail systems that de-duplicate by Message-ID show once.
    acknowledgements: dict[str, set[str]] = defaultdict(set)
    for mail in smtp_sink.received:
        acknowledgements[mail.recipients[0]].add(mail.message["Message-ID"])
    assert {customer: len(ids) for customer, ids in acknowledgements.items()} == {
        f"c{n}@example.com": 1 for n in range(TICKETS_SENT)
    }, "one acknowledgement per customer"

    sent = defaultdict(set)
    for event in events:
        if event["type"] == "notification.sent":
            sent[event["purpose"]].add((event["key"], event["external_id"]))
    assert {ts for _, ts in sent["announcement"]} == {call.response["ts"] for call in announcements(fake_slack)}
    assert len(sent["assignment_dm"]) == len(sent["acknowledgement"]) == TICKETS_SENT

    pipe = store.pipeline(transaction=False)
    for ticket_id in ticket_ids:
        pipe.llen(f"{ticket_key(ticket_id)}:messages")
    assert pipe.execute() == [1] * TICKETS_SENT, "one message per ticket in the read model"
