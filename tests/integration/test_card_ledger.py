"""The notifier's ledger under load on a real Redis: concurrent deliveries share pipelines, and a ticket card is
updated only when what it shows changes (the real Slack transport, cards read from the read model, fake Slack)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from redis.exceptions import ResponseError

from services.notifier.deliveries import DeliveryScheduler, Skipped
from services.notifier.ledger import Ledger, card_shown_key
from services.notifier.pipelining import GroupPipeline
from services.notifier.plan import Delivery
from services.notifier.slack import SlackTransport
from services.notifier.ticket_cards import TicketCards
from shared.config import load_config
from shared.events import (
    ContactSummary,
    MessageAdded,
    NotificationSent,
    ReplyRoute,
    Sender,
    StatusChanged,
    TicketAssigned,
    TicketCreated,
)
from shared.read_model import ReadModel
from shared.redis_client import connect_redis
from tests.conftest import SLACK_TOKEN

pytestmark = pytest.mark.integration

TICKET = "SB-7001"
CHANNEL = "slack:C0SUPPORT"


@pytest.fixture
async def redis(settings):
    client = connect_redis(settings.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_concurrent_callers_share_one_pipeline_and_each_gets_its_own_answers(redis):
    pipelines = GroupPipeline(redis)
    sent = 0
    real = redis.pipeline

    def counted(*args, **kwargs):
        nonlocal sent
        sent += 1
        return real(*args, **kwargs)

    redis.pipeline = counted
    await redis.set("sb:test:string", "text")

    def read(n: int):
        return lambda pipe: pipe.set(f"sb:test:{n}", n).get(f"sb:test:{n}")

    answers = await asyncio.gather(*(pipelines.execute(read(n)) for n in range(50)))
    assert answers == [[True, str(n)] for n in range(50)]
    assert sent <= 2, "the first caller's pipeline, then everything queued meanwhile"

    # A command's error is its caller's alone.
    wrong, right = await asyncio.gather(
        pipelines.execute(lambda pipe: pipe.hget("sb:test:string", "field")),
        pipelines.execute(lambda pipe: pipe.get("sb:test:string")),
        return_exceptions=True,
    )
    assert isinstance(wrong, ResponseError) and right == ["text"]

    # Reads queued alike for the same pipeline are sent once (a ticket's two new cards read it once).
    sent = 0
    reads = []

    def read_string(pipe):
        reads.append(1)
        pipe.get("sb:test:string")

    blocking = pipelines.execute(lambda pipe: pipe.get("sb:test:1"))
    shared = await asyncio.gather(blocking, *(pipelines.execute(read_string, share="sb:test:string") for _ in range(3)))
    assert shared == [["1"], ["text"], ["text"], ["text"]]
    assert len(reads) == 1 and sent == 2


def events() -> list:
    now = datetime.now(UTC)
    envelope = {"occurred_at": now, "ticket_id": TICKET, "correlation_id": "m1"}
    contact = ContactSummary(
        contact_id="c_ana", name="Ana", email="ana@example.com", identities=["email:ana@example.com"]
    )
    route = ReplyRoute(channel="email", address="ana@example.com", subject="Cannot log in")
    return [
        TicketCreated(
            event_id=uuid.uuid4(),
            **envelope,
            channel="form",
            subject="Cannot log in",
            contact=contact,
            team="support",
            category="general",
            priority="normal",
            reply_route=route,
        ),
        MessageAdded(
            event_id=uuid.uuid4(),
            **envelope,
            message_id=uuid.uuid4(),
            author="customer",
            channel="form",
            text="The password is refused.",
            sender=Sender(name="Ana", email="ana@example.com"),
            reply_route=route,
            contact_id="c_ana",
            received_at=now,
        ),
        TicketAssigned(
            event_id=uuid.uuid4(),
            **envelope,
            team="support",
            agent_id="ben",
            agent_name="Ben",
            slack_user_id="U0BEN",
            subject="Cannot log in",
            contact=contact,
        ),
    ]


def card_update(key: str, target: str) -> Delivery:
    return Delivery(key=key, ticket_id=TICKET, purpose="card_update", target=target, text="update", on_card=True)


async def test_a_card_is_updated_only_when_what_it_shows_changed(settings, redis, fake_slack):
    config = load_config(settings.config)
    read_model = ReadModel(redis)
    await read_model.apply(events())
    slack = SlackTransport(SLACK_TOKEN, fake_slack.base_url, cards=TicketCards(redis, config))
    ledger = Ledger(redis)
    scheduler = DeliveryScheduler({"slack": slack}, ledger, owner="test-notifier")
    try:
        cards = [
            Delivery(key="e1:channel", ticket_id=TICKET, purpose="announcement", target=CHANNEL, text="new"),
            Delivery(key="e1:dm", ticket_id=TICKET, purpose="assignment_dm", target="slack:U0BEN", text="yours"),
        ]
        posted = await asyncio.gather(*scheduler.submit(cards))
        assert all(isinstance(outcome, NotificationSent) for outcome in posted)
        assert await redis.get(card_shown_key(TICKET, CHANNEL))

        # Nothing changed since (e.g. the SLA's deadline was already on the card when it was posted).
        unchanged = await asyncio.gather(*scheduler.submit([card_update("e2:card", CHANNEL)]))
        assert unchanged == [Skipped("the card shows this already")]
        assert fake_slack.calls_to("chat.update") == []

        await read_model.apply(
            [
                StatusChanged(
                    event_id=uuid.uuid4(),
                    occurred_at=datetime.now(UTC),
                    ticket_id=TICKET,
                    from_status="new",
                    to_status="pending",
                    actor="ben",
                    team="support",
                    assignee_id="ben",
                )
            ]
        )
        changed = await asyncio.gather(
            *scheduler.submit([card_update("e3:card", CHANNEL), card_update("e3:dm-card", "slack:U0BEN")])
        )
        assert all(isinstance(outcome, NotificationSent) for outcome in changed)
        updates = fake_slack.calls_to("chat.update")
        assert len(updates) == 2 and all("Pending" in str(call.args["blocks"]) for call in updates)

        again = await asyncio.gather(*scheduler.submit([card_update("e4:card", CHANNEL)]))
        assert again == [Skipped("the card shows this already")] and len(fake_slack.calls_to("chat.update")) == 2
    finally:
        await scheduler.aclose()
        await slack.aclose()
