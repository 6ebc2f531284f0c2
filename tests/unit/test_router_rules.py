"""The classification rules on the router's decisions: what a rule sets reaches ticket.created and the assignment."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from services.router.decide import RouterView, decide_inbound
from shared.config import DeskConfig, load_config
from shared.events import InboundMessage, Sender, TicketAssigned, TicketCreated, ticket_event_adapter
from shared.settings import EXAMPLE_CONFIG

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
CONFIG = load_config(EXAMPLE_CONFIG)  # rules: "urgent raised to high", then "refunds to payments" (stop)


def mail(subject: str, text: str, **fields) -> InboundMessage:
    fields = {"channel": "email", "source": "smtp", **fields}
    return InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id="SB-1001",
        received_at=fields.pop("received_at", NOW),
        channel_message_id=f"<{uuid.uuid4()}@mail.example>",
        sender=Sender(name="Lucía", email="lucia@cliente.example"),
        subject=subject,
        text=text,
        **fields,
    )


def test_a_spanish_refund_mail_goes_to_payments_needing_billing_and_is_raised_when_urgent():
    message = mail("Reembolso", "Me cobraron dos veces el pedido 4471. Quiero un reembolso, es urgente.")
    created, _, assigned, *_ = decide_inbound(message, RouterView(), CONFIG, NOW).events
    assert isinstance(created, TicketCreated) and isinstance(assigned, TicketAssigned)
    assert (created.team, created.category, created.priority) == ("payments", "refund", "high")
    assert created.tags == ["urgent", "refund"] and created.skills == ["billing"]
    assert (created.language, created.flags) == ("es", ["urgent"])
    assert created.rules == ["urgent raised to high", "refunds to payments"]
    assert assigned.team == "payments" and assigned.agent_id in CONFIG.team("payments").members
    assert assigned.priority == "high"


def test_an_urgent_chinese_message_is_raised_to_high_and_stays_with_support():
    message = mail("账户问题", "我的账户被锁定了，非常紧急，请马上处理。", channel="telegram", source="telegram")
    created = decide_inbound(message, RouterView(), CONFIG, NOW).events[0]
    assert isinstance(created, TicketCreated)
    assert (created.team, created.priority, created.language) == ("support", "high", "zh")
    assert created.rules == ["urgent raised to high"]


def test_ticket_created_without_the_new_fields_still_reads():
    """Events written before rules existed carry no language, flags, skills or rules."""
    created = decide_inbound(mail("Login", "I cannot log in."), RouterView(), CONFIG, NOW).events[0]
    old = json.loads(created.model_dump_json())
    for key in ("language", "flags", "skills", "rules"):
        del old[key]
    parsed = ticket_event_adapter.validate_python(old)
    assert isinstance(parsed, TicketCreated)
    assert parsed.language is None and parsed.rules == [] and parsed.team == "support"


def test_a_rule_can_route_by_whether_a_business_calendar_was_open_when_the_message_came():
    data = CONFIG.model_dump(by_alias=True)
    data["calendars"].append(
        {"id": "office", "timezone": "Europe/Madrid", "hours": {day: ["09:00-18:00"] for day in WEEKDAYS}}
    )
    data["rules"] = [
        {"name": "after hours", "when": {"outside_business_hours": "office"}, "set": {"tags": ["after-hours"]}}
    ]
    config = DeskConfig.model_validate(data)
    monday_noon, monday_night = datetime(2026, 11, 30, 11, 0, tzinfo=UTC), datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    during = decide_inbound(mail("Login", "I cannot log in.", received_at=monday_noon), RouterView(), config, NOW)
    after = decide_inbound(mail("Login", "I cannot log in.", received_at=monday_night), RouterView(), config, NOW)
    assert during.events[0].rules == [] and after.events[0].rules == ["after hours"]
    assert "after-hours" in after.events[0].tags
    data["rules"][0]["when"] = {"within_business_hours": "mars"}
    with pytest.raises(ValueError, match="rules.0.when.within_business_hours: unknown calendar 'mars'"):
        DeskConfig.model_validate(data)
