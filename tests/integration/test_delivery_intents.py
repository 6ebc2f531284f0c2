"""A notifier that died mid-call: its delivery is found in Slack, not posted again (real Redis, fake Slack).

The dead sender recorded its intent and made (or not) the call, but never its sent record. The
next sender, whether it comes while the intent's lease runs (it waits it out) or long after, looks
for the delivery's key in the message metadata (conversations.history; conversations.replies for a
thread post; the DM's conversation for a DM) and adopts the ts it finds, or posts once when the
call never reached Slack.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from services.notifier.deliveries import DeliveryScheduler, Sent, sent_event
from services.notifier.ledger import Ledger, card_key, intent_key
from services.notifier.plan import Delivery
from services.notifier.slack import SlackTransport
from shared.events import NotificationSent
from shared.redis_client import connect_redis
from tests.conftest import SLACK_TOKEN
from tests.fakes.slack_api import FakeSlackApi

pytestmark = pytest.mark.integration

# Short, so that the test waits the lease out quickly; the calls to the fake take milliseconds.
LEASE_SECONDS = 1.0
TICKET = "SUP-1001"

DELIVERIES = {
    "announcement": Delivery(
        key="e1:channel", ticket_id=TICKET, purpose="announcement", target="slack:C0SUPPORT", text="New ticket"
    ),
    "assignment_dm": Delivery(
        key="e1:dm", ticket_id=TICKET, purpose="assignment_dm", target="slack:U0ALICE", text="Yours: SUP-1001"
    ),
    "mirror": Delivery(
        key="e2:mirror", ticket_id=TICKET, purpose="mirror", target="slack:C0BILLING", text="More", in_thread=True
    ),
}


@pytest.fixture
async def ledger(settings):
    redis = connect_redis(settings.redis_url)
    try:
        yield Ledger(redis, intent_lease_seconds=LEASE_SECONDS)
    finally:
        await redis.aclose()


@pytest.fixture
async def thread_ts(ledger, fake_slack: FakeSlackApi) -> str:
    """The ticket's card in another team's channel, the thread its mirrors there go to (posted by a sender
    that finished); the announcement tested is the ticket's first card in support's channel."""
    client = AsyncWebClient(token=SLACK_TOKEN, base_url=fake_slack.base_url)
    ts = (await client.chat_postMessage(channel="C0BILLING", text="the announcement"))["ts"]
    await ledger.redis.set(card_key(TICKET, "slack:C0BILLING"), ts)
    return ts


async def deliver_after_a_dead_sender(
    ledger: Ledger,
    fake_slack: FakeSlackApi,
    delivery: Delivery,
    thread_ts: str,
    *,
    reached_slack: bool,
    arrives: str = "during the lease",
) -> NotificationSent:
    slack = SlackTransport(SLACK_TOKEN, fake_slack.base_url)
    begun = await ledger.begin(delivery.key, "dead-sender")
    assert not begun.held and begun.sent is None and begun.left_at is None
    if reached_slack:
        await slack.send(delivery, thread_ts if delivery.in_thread else None)
    if arrives == "after the lease":
        # The next sender comes late (a restart after the lease): time passing is what is tested.
        await asyncio.sleep(LEASE_SECONDS)
    scheduler = DeliveryScheduler({"slack": slack}, ledger, owner="survivor", retry_deadline=10)
    try:
        [task] = scheduler.submit([delivery])
        outcome = await task
    finally:
        await scheduler.aclose()
    assert isinstance(outcome, NotificationSent)
    return outcome


def posts_of(fake_slack: FakeSlackApi, key: str) -> list:
    return [
        call
        for call in fake_slack.calls_to("chat.postMessage")
        if call.ok and call.args.get("metadata", {}).get("event_payload", {}).get("key") == key
    ]


@pytest.mark.parametrize("arrives", ["during the lease", "after the lease"])
@pytest.mark.parametrize("purpose", list(DELIVERIES))
async def test_a_post_that_reached_slack_is_adopted_not_repeated(ledger, fake_slack, thread_ts, purpose, arrives):
    delivery = DELIVERIES[purpose]

    outcome = await deliver_after_a_dead_sender(
        ledger, fake_slack, delivery, thread_ts, reached_slack=True, arrives=arrives
    )

    [post] = posts_of(fake_slack, delivery.key)
    assert outcome.external_id == post.response["ts"]
    assert (await ledger.sent(delivery.key))["external_id"] == post.response["ts"]
    assert not await ledger.redis.exists(intent_key(delivery.key))
    if delivery.in_thread:
        assert post.args["thread_ts"] == thread_ts


@pytest.mark.parametrize("purpose", list(DELIVERIES))
async def test_a_post_that_never_reached_slack_is_made_once_after_the_lease(ledger, fake_slack, thread_ts, purpose):
    delivery = DELIVERIES[purpose]

    outcome = await deliver_after_a_dead_sender(ledger, fake_slack, delivery, thread_ts, reached_slack=False)

    [post] = posts_of(fake_slack, delivery.key)
    assert outcome.external_id == post.response["ts"]
    assert (await ledger.sent(delivery.key))["external_id"] == post.response["ts"]
    # It was looked for before it was posted.
    lookups = [call for call in fake_slack.calls if call.method in ("conversations.history", "conversations.replies")]
    assert lookups and lookups[0].ok and lookups[-1].at <= post.at
    if delivery.in_thread:
        assert post.args["thread_ts"] == thread_ts


async def test_begin_holds_off_others_during_the_lease_and_answers_the_record_once_there(ledger):
    delivery = DELIVERIES["announcement"]

    first = await ledger.begin(delivery.key, "sender-a")
    other = await ledger.begin(delivery.key, "sender-b")
    again = await ledger.begin(delivery.key, "sender-a")
    once_more = await ledger.begin(delivery.key, "sender-a")
    sent = sent_event(delivery, Sent("1700000000.000100", datetime.now(UTC)))
    await ledger.record(sent, datetime.now(UTC))
    after_record = await ledger.begin(delivery.key, "sender-b")

    assert first.left_at is None and not first.held
    assert other.held
    # Its own earlier attempt left no outcome: it may have been made, since the first attempt.
    assert again.left_at is not None and not again.held
    assert once_more.left_at == again.left_at
    assert after_record.sent is not None and after_record.sent["external_id"] == "1700000000.000100"
    assert not await ledger.redis.exists(intent_key(delivery.key))


async def test_a_rate_limited_look_up_is_tried_again_not_given_up_for_a_post(ledger, fake_slack, thread_ts):
    delivery = DELIVERIES["announcement"]
    fake_slack.rate_limit_next("conversations.history", count=2)

    outcome = await deliver_after_a_dead_sender(
        ledger, fake_slack, delivery, thread_ts, reached_slack=True, arrives="after the lease"
    )

    [post] = posts_of(fake_slack, delivery.key)
    assert outcome.external_id == post.response["ts"]
    assert [call.rate_limited for call in fake_slack.calls_to("conversations.history")] == [True, True, False]
