"""Acknowledgements to addresses typed into the web form are limited harder than those to verified channels
(issue #16): `acknowledgements.claimed_per_hour` per address and `claimed_total_per_hour` for all of them."""

from __future__ import annotations

import httpx
import pytest

from services.notifier.ledger import CLAIMED_ACKNOWLEDGEMENTS_KEY, Ledger, claimed_acknowledgements_key, reserved_key
from shared.redis_client import connect_redis
from shared.settings import Settings
from tests.fakes.slack_api import FakeSlackApi
from tests.support import ServiceProcesses

pytestmark = pytest.mark.integration


async def test_claimed_addresses_take_from_their_own_and_the_shared_counters(settings: Settings):
    redis = connect_redis(settings.redis_url)
    try:
        ledger = Ledger(redis)
        limits = {"claimed_limits": (1, 2)}
        ask = [("t1:ack", "email:a@x.example"), ("t2:ack", "email:a@x.example"), ("t3:ack", "email:b@x.example")]
        claimed = frozenset(key for key, _ in ask)
        assert await ledger.reserve_acknowledgements(ask, 3, claimed=claimed, **limits) == [True, False, True]
        # A redelivered event (a notifier killed before it sent) takes no second place.
        assert await ledger.reserve_acknowledgements(ask[:1], 3, claimed=claimed, **limits) == [True]
        # The shared counter is full (2): a third address is refused; a verified one is not counted there.
        assert await ledger.reserve_acknowledgements(
            [("t4:ack", "email:c@x.example"), ("t5:ack", "telegram:42")], 3, claimed=frozenset({"t4:ack"}), **limits
        ) == [False, True]
        # An acknowledgement that was not sent gives its place back.
        await ledger.release_acknowledgement("email:b@x.example", claimed_key="t3:ack")
        assert await redis.get(CLAIMED_ACKNOWLEDGEMENTS_KEY) == "1"
        assert await redis.get(claimed_acknowledgements_key("email:B@x.example")) == "0"
        assert not await redis.exists(reserved_key("t3:ack"))
        assert await ledger.reserve_acknowledgements(
            [("t6:ack", "email:c@x.example")], 3, claimed=frozenset({"t6:ack"}), **limits
        ) == [True]
    finally:
        await redis.aclose()


def test_one_acknowledgement_an_hour_to_an_address_typed_into_the_form(
    services: ServiceProcesses, fake_slack: FakeSlackApi, smtp_sink
):
    services.start("router")
    services.start("notifier")
    base_url = services.start_http()
    posts = [
        ("victim@customer.example", "Where is my parcel", "Order 1 did not arrive yet."),
        ("victim@customer.example", "Invoice address wrong", "Please change the street on invoice 77."),
        ("bob@customer.example", "Password reset", "The reset link has expired."),
    ]
    tickets = []
    for email, subject, message in posts:
        body = {"name": "Someone", "email": email, "subject": subject, "message": message}
        answer = httpx.post(f"{base_url}/v1/forms/contact", json=body, timeout=30)
        assert answer.status_code == 202, answer.text
        tickets.append(answer.json()["ticket_id"])
    # Each ticket's card is posted after its creation was handled (acknowledgement decided) by the notifier.
    for ticket_id in tickets:
        fake_slack.wait_for_calls_sync(
            "chat.postMessage", timeout=60, predicate=lambda call, t=ticket_id: t in str(call.args)
        )
    smtp_sink.wait_for(lambda mail: mail.recipients == ["bob@customer.example"])
    assert [mail.recipients for mail in smtp_sink.received].count(["victim@customer.example"]) == 1
