"""Logged phone calls in pure code (services.intake.phone_calls): the `/sb call` modal and its submission,
the CLI's details, where replies go, and the ticket message a call becomes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.intake.phone_calls import (
    CALL_MODAL,
    CallInvalid,
    call_inbound,
    call_modal,
    logged_view,
    read_call,
    reply_route,
    submitted_call,
)
from services.intake.slack_slash import parse
from services.router.contacts import sender_identities
from shared import i18n
from shared.events import ReplyRoute

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
EN, ZH = i18n.texts("en"), i18n.texts("zh-Hans")


def values(reach: str = "+34 600 123 456", summary: str = "Card charged twice", duration: str | None = "12") -> dict:
    """A submitted modal's `view.state.values`, as Slack sends them."""
    return {
        "caller_name": {"caller_name": {"type": "plain_text_input", "value": "Ana Pérez"}},
        "caller_reach": {"caller_reach": {"type": "plain_text_input", "value": reach}},
        "summary": {"summary": {"type": "plain_text_input", "value": summary}},
        "direction": {"direction": {"type": "static_select", "selected_option": {"value": "outbound", "text": {}}}},
        "duration": {"duration": {"type": "number_input", "value": duration}},
    }


def test_sb_call_is_a_subcommand_and_opens_a_modal_slack_accepts():
    assert parse("call").subcommand == "call"
    modal = call_modal(EN)
    assert modal["callback_id"] == CALL_MODAL
    assert len(modal["title"]["text"]) <= 24 and len(modal["submit"]["text"]) <= 24
    blocks = [block["block_id"] for block in modal["blocks"]]
    assert blocks == ["caller_name", "caller_reach", "summary", "direction", "duration"]
    assert all(block["element"]["action_id"] == block["block_id"] for block in modal["blocks"])


def test_the_modal_and_its_logged_view_are_in_the_agents_language():
    english, chinese = call_modal(EN), call_modal(ZH)
    assert (english["title"]["text"], english["submit"]["text"]) == ("Log a phone call", "Log call")
    buttons = (chinese["title"]["text"], chinese["submit"]["text"], chinese["close"]["text"])
    assert buttons == ("记录电话", "记录", "取消")
    assert len(chinese["title"]["text"]) <= 24 and len(chinese["submit"]["text"]) <= 24
    labels = [block["label"]["text"] for block in chinese["blocks"]]
    assert labels == ["来电人姓名", "电话或邮箱", "摘要", "方向", "时长（分钟）"]
    assert [option["value"] for option in chinese["blocks"][3]["element"]["options"]] == ["inbound", "outbound"]
    assert logged_view("SB-1", EN)["blocks"][0]["text"]["text"] == (
        "Logged as *SB-1*: it is routed like any other ticket."
    )
    done = logged_view("SB-1", ZH)
    assert (done["title"]["text"], done["close"]["text"]) == ("电话已记录", "完成")
    assert done["blocks"][0]["text"]["text"] == "已记录为 *SB-1*：它会像其他工单一样被分配。"


def test_a_submitted_modal_is_a_call_with_an_e164_phone():
    call = submitted_call(values(), "ana", NOW, EN)
    assert (call.name, call.phone, call.email) == ("Ana Pérez", "+34600123456", None)
    assert (call.direction, call.duration_minutes, call.agent_id, call.logged_at) == ("outbound", 12, "ana", NOW)
    assert call.subject == "Phone call: Card charged twice"
    by_mail = submitted_call(values(reach="Ana@Example.com", duration=None), "ana", NOW, EN)
    assert (by_mail.email, by_mail.phone, by_mail.duration_minutes) == ("Ana@example.com", None, None)


def test_what_to_correct_is_said_per_field():
    with pytest.raises(CallInvalid) as invalid:
        submitted_call(values(reach="600 123 456", summary="  "), "ana", NOW, EN)
    assert set(invalid.value.errors) == {"caller_reach", "summary"}
    assert "international" in invalid.value.errors["caller_reach"]
    with pytest.raises(CallInvalid) as nothing:
        submitted_call(values(reach=""), "ana", NOW, EN)
    assert "phone number or email" in nothing.value.errors["caller_reach"]
    with pytest.raises(CallInvalid) as chinese:
        submitted_call(values(reach="600 123 456", summary="  "), "ana", NOW, ZH)
    assert chinese.value.errors == {
        "caller_reach": "不是国际格式的电话号码（+34 600 123 456）。",
        "summary": "请写下这通电话的内容。",
    }
    with pytest.raises(CallInvalid) as cli:
        read_call(summary="x", agent_id="admin", logged_at=NOW, email="not-an-address", direction="sideways")
    assert set(cli.value.errors) == {"email", "direction"}
    with pytest.raises(CallInvalid) as long:
        read_call(summary="x", agent_id="admin", logged_at=NOW, phone="+34600123456", duration="99999")
    assert set(long.value.errors) == {"duration"}


def test_replies_go_to_the_email_else_whatsapp_when_configured_else_nowhere():
    both = read_call(summary="x", agent_id="a", logged_at=NOW, phone="+34600123456", email="ana@example.com")
    assert reply_route(both, whatsapp=True) == ReplyRoute(
        channel="email", address="ana@example.com", subject="Phone call: x"
    )
    phone_only = read_call(summary="x", agent_id="a", logged_at=NOW, phone="+34 600 123 456")
    assert reply_route(phone_only, whatsapp=True) == ReplyRoute(channel="whatsapp", address="34600123456")
    assert reply_route(phone_only, whatsapp=False) is None


def test_a_call_is_a_phone_message_with_claimed_identities_and_no_acknowledgement():
    call = read_call(
        summary="Card charged twice\nwants a refund",
        agent_id="ana",
        logged_at=NOW,
        name="Ana",
        phone="+34600123456",
        email="ana@example.com",
        duration=7,
    )
    fields = {
        "ticket_id": "SB-1001",
        "message_id": uuid.uuid4(),
        "idempotency_key": "phone:call:k",
        "conversations": [],
    }
    message = call_inbound(call, ticket_fields=fields, key="k", agent_name="Ana Silva", whatsapp=False)
    assert message.channel == "phone" and message.source == "call:ana" and not message.acknowledge
    assert message.text == "[Inbound phone call, 7 min, logged by Ana Silva]\nCard charged twice\nwants a refund"
    assert message.reply_route.channel == "email" and message.subject == "Phone call: Card charged twice"
    assert sender_identities("phone", message.sender) == {"email:ana@example.com": False, "phone:+34600123456": False}
