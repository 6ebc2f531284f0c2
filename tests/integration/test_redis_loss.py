"""Losing Redis loses nothing (issues 8 and 9), on the real broker, every service a real process.

Tickets on every channel, agent replies, a bounce, SLA timers, an agent away and a quarantined
auto-reply are made; then Redis loses everything (FLUSHDB while the stack runs, or a redis-server
killed with SIGKILL and restarted empty) and `switchboard replay` rebuilds it from Kafka. The read API and
every key of the projections must come back as they were; customers' replies on every channel
join their old tickets; a new ticket gets a fresh number; nothing is sent twice; a pending SLA
timer fires once. While the state is missing, intake mints no ticket number and consumers wait.
"""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from websockets.asyncio.client import connect

from services.intake.chat import CLOSE_TRY_AGAIN_LATER
from shared.settings import Settings
from shared.state import REPLAY_HINT
from shared.topics import INBOUND, TICKETS, Topics
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.smtp_sink import SmtpSink
from tests.fakes.telegram_api import FakeTelegramApi
from tests.integration.lost_redis import (
    OwnRedis,
    assert_same_projections,
    availability_change,
    chat_again,
    chat_ticket,
    email_ticket,
    events_on,
    projections,
    quick_sla_config,
    read_api,
    read_api_paths,
    readiness,
    replay,
    settle,
    slack_posts,
    slack_thread_reply,
    slack_ticket,
    start_stack,
    telegram_ticket,
    ticket_number,
    wait_for_event,
)
from tests.integration.test_email_defence import dsn_bounce
from tests.integration.test_email_stack import SUPPORT, mail
from tests.integration.test_slack_stack import post_signed
from tests.integration.test_telegram_stack import post_update, update
from tests.integration.test_web_chat import next_frame
from tests.support import ServiceProcesses, eventually, reply_as_agent, switchboard_cli, topic_size

pytestmark = pytest.mark.integration

# The key families of the README's table that the first test's history fills.
FAMILIES = (
    "sb:intake:ticket_sequence:",
    "sb:intake:ticket_for:",
    "sb:conversation:",
    "sb:chat:session:",
    "sb:ticket:",
    "sb:contact:",
    "sb:identity:",
    "sb:undeliverable",
    "sb:sla:timers",
    "sb:sla:ticket:",
    "sb:notifier:sent:",
    "sb:notifier:card:",
    "sb:notifier:acks:",
    "sb:router:turn:",
    "sb:quarantine:",
    "sb:agent:",
    "sb:team:",
)
# The urgent team's first-response target: long enough that its breach is still pending while
# the state is snapshotted, flushed and replayed, short enough to fire during the test. Its
# warning (at a tenth) fires before the flush and must not fire again.
QUICK_SLA_SECONDS = 40


def thread_root(store: redis.Redis, ticket_id: str) -> str | None:
    """The ts of the ticket's card in its team's channel (a ticket never moved has one there): its thread."""
    [key] = store.keys(f"sb:notifier:card:{ticket_id}:slack:C*")
    return store.get(key)


async def test_a_flushed_redis_is_rebuilt_by_replay_and_nothing_is_lost_or_repeated(
    services: ServiceProcesses,
    fake_slack: FakeSlackApi,
    fake_telegram: FakeTelegramApi,
    smtp_sink: SmtpSink,
    tmp_path: Path,
):
    stack = start_stack(services, quick_sla_config(tmp_path, QUICK_SLA_SECONDS))
    settings = stack.settings

    # Tickets on every channel.
    form = stack.form_ticket("fay@example.com", "Cannot log in", "My password is refused.")
    email, first_mail, ack_mail = email_ticket(stack, smtp_sink, "bob@customer.example", "Invoice question")
    bounced, _, bounced_ack = email_ticket(stack, smtp_sink, "gone@customer.example", "Account locked")
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=60) as client:
        client.sendmail("", [SUPPORT], dsn_bounce("gone@customer.example", bounced_ack["Message-ID"]))
    telegram = telegram_ticket(stack, fake_telegram, "My card was charged twice")
    chat, token = await chat_ticket(stack, "Eve", "eve@example.com", "Hello, my order is late")
    thread_ts = f"{int(time.time())}.000100"
    slack = slack_ticket(stack, fake_slack, "Ev001", thread_ts, "Our export is failing")
    stack.send_mail(
        mail(
            "Automatic reply: your order",
            "Out of office.",
            sender="carol@customer.example",
            Auto_Submitted="auto-replied",
        )
    )
    stack.ticket(bounced, lambda ticket: [m["kind"] for m in ticket["messages"]] == ["message", "bounce"])
    # Agent replies on every customer channel.
    for ticket_id in (form, email, telegram, chat, slack):
        stack.ticket(ticket_id)
        reply_as_agent(settings, ticket_id, f"Agent answer on {ticket_id}.")
    # The lifecycle: agents' lists, a team's queue, statuses, tags and the audit trail are rebuilt too.
    for args in (
        ("claim", form, "--agent", "ben"),
        ("status", form, "solved", "--agent", "ben"),
        ("tag", telegram, "--add", "billing"),
        # Pending: it waits in the team's queue (the dispatcher serves only new and open tickets).
        ("status", chat, "pending"),
        ("assign", chat, "--to-team", "support"),
    ):
        assert switchboard_cli(settings, "ticket", *args).returncode == 0
    stack.ticket(form, lambda ticket: ticket["status"] == "solved")
    stack.ticket(telegram, lambda ticket: ticket["tags"] == ["billing"])
    stack.ticket(chat, lambda ticket: ticket["assignee"] is None)
    # The urgent ticket: its warning fires now, its breach after the replay.
    urgent = stack.form_ticket("uma@example.com", "Production down", "Everything fails.", form="urgent")
    await wait_for_event(settings, lambda e: e["type"] == "sla.warning" and e["ticket_id"] == urgent)
    # The lead of both teams goes away (no member's assignment changes).
    await availability_change(settings, "lena", available=False)
    await settle(settings)
    store = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    assert store.smembers("sb:undeliverable") == {"gone@customer.example"}
    [kept] = json.loads(switchboard_cli(settings, "quarantine", "list", "--json").stdout)
    assert kept["reason_code"] == "machine_mail_no_ticket"

    paths = read_api_paths(settings.redis_url)
    api_before, redis_before = read_api(stack.base_url, paths), projections(settings.redis_url)
    assert [family for family in FAMILIES if not any(key.startswith(family) for key in redis_before)] == []
    posts_before, mails_before = slack_posts(fake_slack), list(smtp_sink.received)
    telegram_before = len(fake_telegram.calls_to("sendMessage"))
    highest = max(ticket_number(path.rsplit("/", 1)[1]) for path in paths if path.startswith("/v1/tickets/"))

    redis.Redis.from_url(settings.redis_url).flushdb()
    replay(settings)

    redis_after = projections(settings.redis_url)
    breaches = [e for e in await events_on(settings, TICKETS) if e["type"] == "sla.breached"]
    assert breaches == [], "the urgent breach was due before the replay was done: raise QUICK_SLA_SECONDS"
    assert read_api(stack.base_url, paths) == api_before
    assert_same_projections(redis_before, redis_after)

    # A new customer gets a number the log does not hold yet.
    fresh = stack.form_ticket("hal@example.com", "New here", "First question.")
    assert ticket_number(fresh) > highest
    # Customers write again on every channel: each message joins its old ticket.
    stack.send_mail(
        mail(
            "Re: Invoice question",
            "Replying to my own mail",
            In_Reply_To=first_mail["Message-ID"],
            sender="bob@customer.example",
        )
    )
    stack.send_mail(
        mail(
            "Re: " + ack_mail["Subject"],
            "Replying to your acknowledgement",
            In_Reply_To=ack_mail["Message-ID"],
            sender="bob@customer.example",
        )
    )
    assert post_update(stack.base_url, update(1003, 9, "It was on Monday")).status_code == 200
    session, history = await chat_again(stack, token, "Any news?")
    assert session == {"type": "session", "token": token, "ticket_id": chat}
    assert [(frame["from"], frame["text"]) for frame in history] == [
        ("customer", "Hello, my order is late"),
        ("agent", f"Agent answer on {chat}."),
    ]
    reply_ts = f"{int(time.time())}.000200"
    reply = slack_thread_reply("Ev002", thread_ts, reply_ts, "Still failing")
    assert post_signed(stack.base_url, reply).status_code == 200
    for ticket_id, latest in (
        (email, "Replying to your acknowledgement"),
        (telegram, "It was on Monday"),
        (chat, "Any news?"),
        (slack, "Still failing"),
    ):
        ticket = stack.ticket(ticket_id, lambda t, latest=latest: t["messages"][-1]["text"] == latest)
        assert ticket["messages"][-1]["author"] == "customer"
    assert [m["text"] for m in stack.ticket(email)["messages"]][-2:] == [
        "Replying to my own mail",
        "Replying to your acknowledgement",
    ]
    # The bounced address stays undeliverable: the agent's answer is not mailed to it.
    reply_as_agent(settings, bounced, "Unlocked.")

    # The urgent ticket's breach fires once, and its warning was not repeated.
    await wait_for_event(settings, lambda e: e["type"] == "sla.breached" and e["ticket_id"] == urgent, timeout=120)
    await settle(settings)
    announced = [
        e["type"]
        for e in await events_on(settings, TICKETS)
        if e["ticket_id"] == urgent and e["type"].startswith("sla.")
    ]
    assert sorted(announced) == ["sla.breached", "sla.deadline_set", "sla.warning"]
    left = store.zrange("sb:sla:timers", 0, -1) + store.zrange("sb:sla:claimed", 0, -1)
    assert [timer for timer in left if urgent in timer] == [], "no timer of the urgent ticket is left to fire"

    # Nothing was sent twice: what went out after the replay is the new messages' own notifications.
    new_mails = smtp_sink.received[len(mails_before) :]
    assert [m.recipients for m in new_mails] == [["hal@example.com"]], "only the new ticket's acknowledgement"
    assert len(fake_telegram.calls_to("sendMessage")) == telegram_before
    new_posts = slack_posts(fake_slack)[len(posts_before) :]
    assert [post for post in new_posts if post in posts_before] == []
    roots = {ticket_id: thread_root(store, ticket_id) for ticket_id in (email, telegram, chat, slack)}
    in_threads = [post for post in new_posts if post[1] is not None]
    # Mirrors of the five customer messages and of the agent's answer, and the breach: in their threads.
    assert sorted(ts for _, ts, _ in in_threads) == sorted(
        [
            roots[email],
            roots[email],
            roots[telegram],
            roots[chat],
            roots[slack],
            thread_root(store, bounced),
            thread_root(store, urgent),
        ]
    )
    assignee = stack.ticket(fresh)["assignee"]["slack_user_id"]
    # The customer's message reopened the queued chat ticket: the dispatcher gave it to an agent (a DM; its
    # card in the team channel is updated in place).
    served = stack.ticket(chat)["assignee"]["slack_user_id"]
    top_level = sorted(channel for channel, ts, _ in new_posts if ts is None)
    assert top_level == sorted(["C0SUPPORT", assignee, served]), "the new ticket's announcement and the DMs"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A Redis of this test's own: the session's is shared by every test."""
    own = OwnRedis(tmp_path)
    own.start()
    try:
        yield own
    finally:
        own.kill()


@pytest.fixture
def own_services(
    settings: Settings, services: ServiceProcesses, own_redis: OwnRedis, tmp_path: Path
) -> Iterator[ServiceProcesses]:
    """The services (fakes and all) wired to `own_redis`."""
    own = ServiceProcesses(
        settings.model_copy(update={"redis_url": own_redis.url}), tmp_path / "own-logs", extra_env=services.extra_env
    )
    try:
        yield own
    finally:
        own.stop_all()


async def test_a_redis_killed_and_restarted_empty_mints_nothing_until_replay_then_loses_nothing(
    own_services: ServiceProcesses, own_redis: OwnRedis, fake_slack: FakeSlackApi, smtp_sink: SmtpSink
):
    stack = start_stack(own_services)
    settings = stack.settings
    form = stack.form_ticket("fay@example.com", "Cannot log in", "My password is refused.")
    email, _, ack_mail = email_ticket(stack, smtp_sink, "bob@customer.example", "Invoice question")
    chat, token = await chat_ticket(stack, "Eve", "eve@example.com", "Hello, my order is late")
    for ticket_id in (form, email, chat):
        stack.ticket(ticket_id)
    reply_as_agent(settings, email, "One was a pre-authorisation.")
    await settle(settings)
    paths = read_api_paths(settings.redis_url)
    api_before, redis_before = read_api(stack.base_url, paths), projections(settings.redis_url)
    posts_before, mails_before = slack_posts(fake_slack), list(smtp_sink.received)
    topics = Topics(settings.topic_prefix)
    logged = {spec.name: await topic_size(settings.kafka_bootstrap, topics.name(spec)) for spec in (INBOUND, TICKETS)}

    own_redis.kill()
    own_redis.start()

    # Intake and the consumers see that the state is missing ...
    missing = {"ok": False, "problem": REPLAY_HINT}
    eventually(lambda: readiness(stack.base_url)[1]["checks"].get("state") == missing, "intake sees the state missing")
    waiting = "waiting for Redis state (run `switchboard replay`)"

    def router_waits() -> bool:
        status, body = readiness(stack.router_ops)
        checks = body["checks"]
        return (
            status == 503
            and checks.get("state") == missing
            and checks[Topics(stack.settings.topic_prefix).group("switchboard-router")]["problems"] == [waiting]
        )

    eventually(router_waits, "the router waits for the state")
    # ... so a new customer is told to come back rather than given a number the log already holds,
    refused = stack.post_form("ivy@example.com", "Refund", "Where is my refund?")
    assert refused.status_code == 503
    # a reply to our acknowledgement is deferred rather than opening a ticket of its own,
    answer = mail("Re: " + ack_mail["Subject"], "Still waiting", sender="bob@customer.example",
                  In_Reply_To=ack_mail["Message-ID"])  # fmt: skip
    with pytest.raises(smtplib.SMTPDataError) as deferred:
        stack.send_mail(answer)
    assert deferred.value.smtp_code == 451
    # and a chat page is told to try again, not that its session has ended.
    async with connect(stack.ws_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "token": token}))
        error = await next_frame(websocket)
        await websocket.wait_closed()
    assert error["type"] == "error" and error["code"] == "unavailable"
    assert websocket.close_code == CLOSE_TRY_AGAIN_LATER
    # Nothing was published meanwhile.
    assert {
        spec.name: await topic_size(settings.kafka_bootstrap, topics.name(spec)) for spec in (INBOUND, TICKETS)
    } == logged

    replay(settings)
    assert read_api(stack.base_url, paths) == api_before
    assert_same_projections(redis_before, projections(settings.redis_url))

    # The senders retry: the form gets a fresh number, the mail and the chat join their tickets.
    highest = max(ticket_number(path.rsplit("/", 1)[1]) for path in paths if path.startswith("/v1/tickets/"))
    fresh = stack.form_ticket("ivy@example.com", "Refund", "Where is my refund?")
    assert ticket_number(fresh) > highest
    stack.send_mail(answer)
    session, _ = await chat_again(stack, token, "Any news?")
    assert session["ticket_id"] == chat
    stack.ticket(email, lambda t: t["messages"][-1]["text"] == "Still waiting")
    stack.ticket(chat, lambda t: t["messages"][-1]["text"] == "Any news?")
    stack.ticket(fresh)
    await settle(settings)

    created = [e for e in await events_on(settings, TICKETS) if e["type"] == "ticket.created"]
    assert sorted(e["ticket_id"] for e in created) == sorted([form, email, chat, fresh]), "the refused form: once"
    new_mails = smtp_sink.received[len(mails_before) :]
    assert [m.recipients for m in new_mails] == [["ivy@example.com"]], "only the new ticket's acknowledgement"
    new_posts = slack_posts(fake_slack)[len(posts_before) :]
    assert [post for post in new_posts if post in posts_before] == []
    store = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    assert sorted(ts for _, ts, _ in new_posts if ts is not None) == sorted(
        [thread_root(store, email), thread_root(store, chat)]
    ), "the mail and the chat message are mirrored into their tickets' threads"
    assert len([post for post in new_posts if post[1] is None]) == 2, "the new ticket's announcement and DM"
