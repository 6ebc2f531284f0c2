"""What the notifier reads for a batch, on real Redis: the addresses it would mail that bounced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.notifier.handler import NotifierHandler
from services.notifier.ledger import Ledger
from shared.config import load_config
from shared.events import ArticleSuggestion, ReplyRoute, TicketSuggestions
from shared.read_model import UNDELIVERABLE_KEY
from shared.redis_client import connect_redis
from shared.topics import Topics

pytestmark = pytest.mark.integration


async def test_a_suggestions_mail_whose_ticket_opened_in_an_earlier_batch_knows_its_address_bounced(settings):
    redis = connect_redis(settings.redis_url)
    try:
        await redis.sadd(UNDELIVERABLE_KEY, "gone@example.com")
        handler = NotifierHandler(load_config(settings.config), Ledger(redis), None, Topics("t."))  # type: ignore[arg-type]
        suggestions = TicketSuggestions(
            event_id=uuid.uuid4(),
            occurred_at=datetime.now(UTC),
            ticket_id="SB-1001",
            articles=[ArticleSuggestion(slug="refunds", title="Getting a refund", language="en", score=2.0)],
            deflect_route=ReplyRoute(channel="email", address="Gone@Example.com"),
        )

        view = await handler._view([suggestions])

        assert view.undeliverable == {"gone@example.com"}
    finally:
        await redis.aclose()
