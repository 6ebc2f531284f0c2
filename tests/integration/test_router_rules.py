"""Classification rules through the router's batch handler: the ticket in the read model shows what they decided."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.engine import Record
from shared.events import InboundMessage, Sender

pytestmark = pytest.mark.integration


async def test_a_refund_form_is_classified_by_the_rules_and_the_ticket_shows_why(handler):
    message = InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id="SB-2601",
        received_at=datetime.now(UTC),
        channel="form",
        channel_message_id=str(uuid.uuid4()),
        source="contact",
        sender=Sender(name="Ana", email="ana@example.com"),
        subject="Charged twice",
        text="I was charged twice for order 4471. Please refund one payment asap.",
    )
    now = datetime.now(UTC)
    await handler.handle([Record("t.switchboard.inbound.v1", 0, 0, message.ticket_id, now, message)])
    ticket = await handler.read_model.ticket("SB-2601")
    assert (ticket["team"], ticket["category"], ticket["priority"]) == ("payments", "refund", "high")
    assert (ticket["language"], ticket["flags"], ticket["skills"]) == ("en", ["urgent"], ["billing"])
    assert ticket["rules"] == ["urgent raised to high", "refunds to payments"]
    assert ticket["assignee"]["agent_id"] in ("ana", "chloe")
