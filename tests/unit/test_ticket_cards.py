"""The ticket card (services.notifier.cards) and the CSAT requests (services.notifier.csat_asks), built directly."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.notifier import csat_asks
from services.notifier.cards import ACTION_IDS, card_state, ticket_card
from shared.csat import CsatSubject

FIELDS = {
    "id": "SB-1042",
    "status": "open",
    "channel": "email",
    "subject": "Cannot log in",
    "contact_id": "c_1",
    "team": "support",
    "priority": "high",
    "tags": json.dumps(["login", "vip"]),
    "assignee_id": "ben",
    "assignee_name": "Ben Okafor",
    "assignee_slack_user_id": "U0BEN",
    "first_response_due": "2026-11-24T14:00:00+00:00",
    "first_response_sla": "running",
}


def card(**fields):
    return ticket_card(
        card_state(
            {**FIELDS, **fields},
            contact_name="Ana",
            contact_email="ana@customer.example",
            team_name="Customer Support",
            excerpt="My password is refused",
        )
    )


def buttons(blocks) -> list[dict]:
    return [element for block in blocks if block["type"] == "actions" for element in block["elements"]]


def shown(blocks) -> str:
    return json.dumps(blocks)


def test_the_card_shows_the_ticket_and_has_the_eight_buttons_valued_with_its_id():
    built = card()

    assert [button["action_id"] for button in buttons(built.blocks)] == list(ACTION_IDS)
    assert ACTION_IDS == (
        "sb_claim", "sb_reply", "sb_note", "sb_reassign", "sb_pending", "sb_resolve", "sb_escalate", "sb_reopen",
    )  # fmt: skip
    assert {button["value"] for button in buttons(built.blocks)} == {"SB-1042"}
    text = shown(built.blocks)
    for fact in ("*SB-1042* Cannot log in", "Ana (ana@customer.example)", "email", "Open", "High", "<@U0BEN>"):
        assert fact in text
    assert "`login` `vip`" in text and ">My password is refused" in text
    due = int(datetime(2026, 11, 24, 14, tzinfo=UTC).timestamp())
    assert f"First response due <!date^{due}^" in text
    assert built.text.startswith("*SB-1042* Cannot log in") and "<@U0BEN>" in built.text
    # Slack's limits: at most 10 fields in a section, 25 elements in an actions block.
    assert all(len(block.get("fields", [])) <= 10 for block in built.blocks)


def test_the_card_follows_the_lifecycle():
    solved = shown(card(status="solved", first_response_sla="met", csat_score="2").blocks)
    queued = shown(card(assignee_id="", assignee_name="", assignee_slack_user_id="", status="open").blocks)
    breached = shown(card(first_response_sla="breached").blocks)
    pending = shown(card(status="pending").blocks)

    assert "Solved" in solved and "First response met" in solved and "2/5" in solved
    assert "Unassigned (in Customer Support's queue)" in queued
    assert "First response overdue" in breached
    assert "First response due" not in pending


def test_an_assignee_over_their_capacity_is_shown_so():
    assert "<@U0BEN> (over capacity)" in shown(card(over_capacity="1").blocks)
    assert "over capacity" not in shown(card().blocks)


@given(st.text(min_size=1, max_size=200))
def test_whatever_the_customer_wrote_cannot_mention_or_link_in_the_card(subject):
    built = card(subject=subject, tags=json.dumps([]))
    header = built.blocks[0]["text"]["text"]
    assert "<" not in header.removeprefix("*SB-1042* ") and ">" not in header
    assert "<!channel>" not in built.text


def test_a_telegram_rating_keyboard_carries_each_score_in_its_callback_data():
    [row] = csat_asks.telegram_keyboard(CsatSubject("SB-1042", 2))

    assert [data for _, data in row] == [f"csat:SB-1042:2:{score}" for score in range(1, 6)]
    assert all(len(data.encode()) <= 64 for _, data in row)


def test_the_web_chat_frame_and_the_slack_buttons_name_the_resolution():
    subject = CsatSubject("SB-1042", 3)
    assert csat_asks.chat_frame(subject) == {
        "type": "csat",
        "ticket_id": "SB-1042",
        "resolution": 3,
        "scores": [1, 2, 3, 4, 5],
    }
    elements = buttons(csat_asks.slack_blocks(subject, csat_asks.request_text("SB-1042")))
    assert {element["action_id"] for element in elements} == {"sb_csat"}
    assert [element["value"] for element in elements] == [f"SB-1042:3:{score}" for score in range(1, 6)]


def test_the_email_request_carries_the_link():
    now = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    body = csat_asks.email_body("SB-1042", "https://help.example/v1/csat/abc", None, None, now)
    assert "https://help.example/v1/csat/abc?lang=en" in body and "SB-1042" in body
    assert "Dec 15, 2026, 11:30:00\u202fPM UTC" in body


def test_the_email_request_speaks_the_customers_language_and_time_zone():
    now = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    body = csat_asks.email_body("SB-1042", "https://help.example/v1/csat/abc", "zh-Hans", "Asia/Shanghai", now)
    assert "您的请求 SB-1042 已解决" in body
    # 14 days on, in Shanghai's time (UTC+8): past midnight, the 16th.
    assert "2026年12月16日 07:30:00" in body and "?lang=zh-Hans" in body


# Slack's limits (https://api.slack.com/reference/block-kit/blocks, .../methods/chat.postMessage#truncating).
SECTION_TEXT, FIELD_TEXT, BUTTON_TEXT, HEADER_TEXT, FALLBACK_TEXT = 3000, 2000, 75, 150, 40_000
# Escaping makes "&" five characters: the worst a customer can write, repeated up to long texts.
customer_text = st.builds(
    lambda piece, times: piece * times,
    st.text(alphabet=st.sampled_from("&<>\n aé😀"), max_size=8),
    st.integers(0, 2000),
) | st.text(max_size=300)


def within_slack_limits(built) -> None:
    assert len(built.blocks) <= 50 and len(built.text) <= FALLBACK_TEXT
    for block in built.blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_TEXT
        if block["type"] == "section":
            assert "text" not in block or len(block["text"]["text"]) <= SECTION_TEXT
            assert len(block.get("fields", [])) <= 10
            assert all(len(field["text"]) <= FIELD_TEXT for field in block.get("fields", []))
        if block["type"] == "context":
            assert all(len(element["text"]) <= SECTION_TEXT for element in block["elements"])
        if block["type"] == "actions":
            assert all(len(button["text"]["text"]) <= BUTTON_TEXT for button in block["elements"])


@given(
    subject=customer_text,
    name=customer_text,
    email=customer_text,
    excerpt=customer_text,
    tags=st.lists(customer_text, max_size=30),
)
def test_whatever_the_customer_wrote_keeps_every_block_within_slacks_limits(subject, name, email, excerpt, tags):
    built = ticket_card(
        card_state(
            {**FIELDS, "subject": subject, "tags": json.dumps(tags), "assignee_slack_user_id": ""},
            contact_name=name,
            contact_email=email,
            team_name="Customer Support",
            excerpt=excerpt,
        )
    )

    within_slack_limits(built)


def test_a_long_subject_of_ampersands_is_clipped_before_it_is_escaped():
    built = card(subject="&" * 5000)

    within_slack_limits(built)
    assert "&amp;…" in built.blocks[0]["text"]["text"]
    assert "&amp;…" in built.text


def test_a_plain_chats_rating_request_ends_with_its_link_and_waits_without_one():
    subject = CsatSubject("SB-1001", 1)
    link = "https://desk.example/csat/{0.ticket_id}-{0.resolution}".format
    assert csat_asks.chat_text("How did we do?", subject, link) == "How did we do?\nhttps://desk.example/csat/SB-1001-1"
    assert csat_asks.chat_text("How did we do?", subject, None) is None
    assert csat_asks.chat_text("A reply", None, None) == "A reply"
