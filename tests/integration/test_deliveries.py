"""The delivery scheduler on a real Redis ledger, with a fake transport: holds and digests, order, failures.

The transport is a stand-in written here (the scheduler is the unit under test, not the Slack API):
it answers as told and records every call. The scheduler's clock is a fake one the test moves, so
a hold ends when the test says so, not when a loaded machine gets round to it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from services.notifier.deliveries import DeliveryScheduler, Failed, Sent
from services.notifier.errors import RateLimited, Refused
from services.notifier.ledger import Ledger, card_key, intent_key, sent_key
from services.notifier.plan import Delivery
from shared.events import NotificationSent
from shared.redis_client import connect_redis

pytestmark = pytest.mark.integration

CHANNEL = "slack:C0SUPPORT"
DM = "slack:U0BEN"
HOLD_SECONDS = 1.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeTransport:
    """Answers each call as the test set it up, and records it."""

    clock: FakeClock
    # Targets whose next call is answered "slow down" for HOLD_SECONDS.
    rate_limit_next: set[str] = field(default_factory=set)
    # Delivery keys whose next calls fail, one error per call; and keys whose every call fails.
    fail_next: dict[str, list[Exception]] = field(default_factory=dict)
    always_fail: dict[str, Exception] = field(default_factory=dict)
    # Delivery keys whose call waits until the event is set.
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    # Seconds the fake clock moves on with each failed call.
    failure_takes: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    # The thread each delivery was made in, by key.
    threads: dict[str, str | None] = field(default_factory=dict)
    digests: list[list[Delivery]] = field(default_factory=list)

    async def send(self, delivery: Delivery, thread_ts: str | None) -> Sent | None:
        self.calls.append(("send", delivery.key))
        if delivery.target in self.rate_limit_next:
            self.rate_limit_next.discard(delivery.target)
            raise RateLimited(HOLD_SECONDS)
        if gate := self.gates.get(delivery.key):
            await gate.wait()
        if error := self.always_fail.get(delivery.key) or (self.fail_next.get(delivery.key) or [None]).pop(0):
            self.clock.now += self.failure_takes
            raise error
        self.sent.append(delivery.key)
        self.threads[delivery.key] = thread_ts
        return Sent(f"ts-{delivery.key}", datetime.now(UTC))

    async def send_digest(self, target: str, deliveries: list[Delivery]) -> Sent | None:
        self.calls.append(("digest", target))
        self.digests.append(list(deliveries))
        return Sent(f"ts-digest-{len(self.digests)}", datetime.now(UTC))

    async def find_sent(self, delivery: Delivery, thread_ts: str | None, since: float) -> str | None:
        return None


def delivery(key: str, ticket_id: str, target: str = CHANNEL) -> Delivery:
    return Delivery(key=key, ticket_id=ticket_id, purpose="mirror", target=target, text=f"about {ticket_id}")


@pytest.fixture
async def ledger(settings):
    redis = connect_redis(settings.redis_url)
    try:
        yield Ledger(redis)
    finally:
        await redis.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transport(clock) -> FakeTransport:
    return FakeTransport(clock)


@pytest.fixture
async def scheduler(ledger, transport, clock):
    scheduler = DeliveryScheduler(
        {"slack": transport},
        ledger,
        owner="test-notifier",
        retry_deadline=25,
        backoff_initial=0.01,
        backoff_max=0.02,
        clock=clock,
    )
    try:
        yield scheduler
    finally:
        await scheduler.aclose()


async def until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_what_piles_up_on_a_held_target_goes_out_as_one_digest_and_other_targets_go_on(
    scheduler, transport, clock, ledger
):
    transport.rate_limit_next.add(CHANNEL)
    first = delivery("e1:channel", "SB-1001")
    [first_task] = scheduler.submit([first])
    # Held once the scheduler set the hold (after recording the refusal), not merely once Slack said 429.
    await until(lambda: CHANNEL in scheduler._holds and len(scheduler._holds[CHANNEL].waiting) == 1)

    later = [delivery(f"e{n}:channel", f"SB-100{n}") for n in range(2, 6)]
    held_tasks = [first_task, *scheduler.submit(later)]
    [dm_task] = scheduler.submit([delivery("e1:dm", "SB-1001", DM)])
    # All five wait in the channel's hold (the clock stands still, so the hold lasts until moved on).
    await until(lambda: len(scheduler._holds[CHANNEL].waiting) == 5)

    dm = await asyncio.wait_for(dm_task, 10)
    assert isinstance(dm, NotificationSent) and dm.external_id == "ts-e1:dm" and not dm.digest
    assert transport.digests == [] and not any(task.done() for task in held_tasks)

    clock.now += HOLD_SECONDS
    outcomes = await asyncio.wait_for(asyncio.gather(*held_tasks), 10)

    [digest] = transport.digests
    assert sorted(queued.key for queued in digest) == sorted(item.key for item in [first, *later])
    assert all(isinstance(outcome, NotificationSent) for outcome in outcomes)
    assert {(outcome.external_id, outcome.digest) for outcome in outcomes} == {("ts-digest-1", True)}
    assert [outcome.key for outcome in outcomes] == [item.key for item in [first, *later]]
    # Only the call that was told to slow down reached the channel on its own.
    assert [call for call in transport.calls if call[0] == "send" and call[1] != "e1:dm"] == [("send", "e1:channel")]
    for item in [first, *later]:
        assert (await ledger.sent(item.key)) == {
            "external_id": "ts-digest-1",
            "at": outcomes[0].occurred_at.isoformat(),
            "digest": True,
            "conversations": [],
        }


async def test_a_single_delivery_held_back_goes_out_on_its_own_after_the_hold(scheduler, transport, clock):
    transport.rate_limit_next.add(CHANNEL)
    [task] = scheduler.submit([delivery("e1:channel", "SB-1001")])
    await until(lambda: CHANNEL in scheduler._holds and len(scheduler._holds[CHANNEL].waiting) == 1)

    clock.now += HOLD_SECONDS
    outcome = await asyncio.wait_for(task, 10)

    assert outcome.external_id == "ts-e1:channel" and not outcome.digest
    assert transport.digests == []


async def test_deliveries_of_one_ticket_to_one_target_keep_their_order_and_others_do_not_wait(scheduler, transport):
    gate = asyncio.Event()
    transport.gates["e1:channel"] = gate
    # The first one fails once before it goes through: the retry keeps its place.
    transport.fail_next["e1:channel"] = [ConnectionResetError("reset by peer")]
    ticket = [delivery("e1:channel", "SB-1001"), delivery("e2:mirror", "SB-1001"), delivery("e3:mirror", "SB-1001")]
    tasks = scheduler.submit(ticket)
    [other] = scheduler.submit([delivery("e9:channel", "SB-1009")])

    # Another ticket on the same target is not held up by the first ticket's slow call.
    assert (await asyncio.wait_for(other, 10)).external_id == "ts-e9:channel"
    assert transport.sent == ["e9:channel"] and not any(task.done() for task in tasks)

    gate.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 10)

    assert [outcome.key for outcome in outcomes] == ["e1:channel", "e2:mirror", "e3:mirror"]
    assert transport.sent == ["e9:channel", "e1:channel", "e2:mirror", "e3:mirror"]
    assert [key for _, key in transport.calls if key != "e9:channel"] == [
        "e1:channel",
        "e1:channel",
        "e2:mirror",
        "e3:mirror",
    ]


async def test_a_refused_delivery_fails_at_once(scheduler, transport, ledger):
    transport.fail_next["e1:dm"] = [Refused("channel_not_found")]

    [task] = scheduler.submit([delivery("e1:dm", "SB-1001", DM)])
    outcome = await asyncio.wait_for(task, 10)

    assert outcome == Failed("channel_not_found")
    assert transport.calls == [("send", "e1:dm")]
    assert await ledger.sent("e1:dm") is None
    assert not await ledger.redis.exists(intent_key("e1:dm"))


async def test_a_transient_failure_is_retried_until_the_deadline_then_fails(scheduler, transport, ledger):
    transport.always_fail["e1:dm"] = ConnectionResetError("relay reset")
    # Each failed call takes 10 s of the scheduler's clock: the third one ends past the 25 s deadline.
    transport.failure_takes = 10.0

    [task] = scheduler.submit([delivery("e1:dm", "SB-1001", DM)])
    outcome = await asyncio.wait_for(task, 10)

    assert isinstance(outcome, Failed)
    assert outcome.reason == "gave up after 3 attempts: ConnectionResetError('relay reset')"
    assert transport.calls == [("send", "e1:dm")] * 3
    assert await ledger.sent("e1:dm") is None
    assert not await ledger.redis.exists(intent_key("e1:dm"))


async def test_a_delivery_made_before_is_not_put_in_a_digest_again(scheduler, transport, clock, ledger):
    transport.rate_limit_next.add(CHANNEL)
    [first] = scheduler.submit([delivery("e1:channel", "SB-1001")])
    await until(lambda: CHANNEL in scheduler._holds and len(scheduler._holds[CHANNEL].waiting) == 1)
    # Made and recorded before a crash; redelivered while the channel is held.
    made = await asyncio.wait_for(scheduler.submit([delivery("e0:channel", "SB-1000", DM)])[0], 10)
    await ledger.redis.rename(sent_key("e0:channel"), sent_key("e2:channel"))
    [again, third] = scheduler.submit([delivery("e2:channel", "SB-1002"), delivery("e3:channel", "SB-1003")])

    assert (await asyncio.wait_for(again, 10)).external_id == made.external_id
    clock.now += HOLD_SECONDS
    await asyncio.wait_for(asyncio.gather(first, third), 10)
    [digest] = transport.digests
    assert [queued.key for queued in digest] == ["e1:channel", "e3:channel"]


async def test_a_channel_that_is_off_is_logged_and_never_queued(ledger, transport, caplog):
    transport.enabled = False
    scheduler = DeliveryScheduler({"slack": transport}, ledger, owner="test-notifier")
    off = delivery("e1:channel", "SB-1001")

    with caplog.at_level("INFO"):
        assert not scheduler.deliverable(off)

    assert "not delivered: the channel is off" in caplog.text
    assert not await ledger.redis.exists(intent_key("e1:channel"), sent_key("e1:channel"))


async def test_a_card_held_back_goes_out_on_its_own_and_plain_posts_in_a_digest(scheduler, transport, clock):
    transport.rate_limit_next.add(CHANNEL)
    [first] = scheduler.submit([delivery("e1:mirror", "SB-1001")])
    await until(lambda: CHANNEL in scheduler._holds and len(scheduler._holds[CHANNEL].waiting) == 1)
    card = Delivery(key="e2:channel", ticket_id="SB-1002", purpose="announcement", target=CHANNEL, text="card")
    tasks = [first, *scheduler.submit([delivery("e3:mirror", "SB-1003"), card])]
    await until(lambda: len(scheduler._holds[CHANNEL].waiting) == 2)

    clock.now += HOLD_SECONDS
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 10)

    [digest] = transport.digests
    assert [queued.key for queued in digest] == ["e1:mirror", "e3:mirror"]
    assert (outcomes[2].external_id, outcomes[2].digest) == ("ts-e2:channel", False)


async def test_updates_of_a_card_piled_up_behind_a_hold_are_made_once(scheduler, transport, clock, ledger):
    transport.rate_limit_next.add(CHANNEL)
    updates = [
        Delivery(key=f"e{n}:card", ticket_id="SB-1001", purpose="card_update", target=CHANNEL, text="card")
        for n in range(1, 4)
    ]
    await ledger.redis.set(card_key("SB-1001", CHANNEL), "1700.000100")
    [first] = scheduler.submit(updates[:1])
    await until(lambda: CHANNEL in scheduler._holds and scheduler._holds[CHANNEL].until > clock.now)
    later = scheduler.submit(updates[1:])

    clock.now += HOLD_SECONDS
    outcomes = await asyncio.wait_for(asyncio.gather(first, *later), 10)

    # The first was under way when Slack said 429; of the two that waited behind it, the last one is made.
    assert [type(outcome).__name__ for outcome in outcomes] == ["NotificationSent", "Skipped", "NotificationSent"]
    assert transport.sent == ["e1:card", "e3:card"]


async def test_a_thread_post_goes_under_the_tickets_card_in_its_own_channel(scheduler, transport):
    """A ticket handed to another team has a card, and so a thread, in each team's channel."""
    billing = "slack:C0BILLING"
    cards = [
        Delivery(key=f"e{n}:channel", ticket_id="SB-1001", purpose="announcement", target=target, text="card")
        for n, target in ((1, CHANNEL), (2, billing))
    ]
    await asyncio.gather(*scheduler.submit(cards))
    posts = [
        Delivery(key=f"e3:{name}", ticket_id="SB-1001", purpose="sla", target=target, text="due", in_thread=True)
        for name, target in (("support", CHANNEL), ("billing", billing))
    ]

    await asyncio.wait_for(asyncio.gather(*scheduler.submit(posts)), 10)

    assert transport.threads["e3:support"] == "ts-e1:channel"
    assert transport.threads["e3:billing"] == "ts-e2:channel"
