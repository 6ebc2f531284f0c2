"""Cross-channel duplicate tickets (services/router/duplicates.py): similarity, the choice, the router's events
and what the notifier makes of them. Pure: no Redis, no broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.notifier.plan import NotifierView, TicketContext, plan
from services.router.contacts import ContactRecord
from services.router.decide import RouterView, decide_inbound
from services.router.duplicates import (
    TEXT_CHARS,
    RecentTicket,
    RecentTickets,
    find_duplicate,
    similarity,
    tokens,
)
from shared.config import load_config
from shared.events import (
    DuplicateSuggested,
    InboundMessage,
    MessageAdded,
    ReplyRoute,
    Sender,
    StatusChanged,
    TicketAssigned,
    TicketCreated,
    TicketMerged,
)
from shared.read_model import contact_recent_key, projection
from shared.settings import EXAMPLE_CONFIG

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONFIG = load_config(EXAMPLE_CONFIG)
ANA = Sender(name="Ana", email="ana@example.com")
LOGIN = "I cannot log in to my account since yesterday, the password reset mail never arrives."
REFUND = "Please refund the second charge on my last invoice, I was billed twice for December."

texts = st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), max_size=80)


# No deadline: the first Chinese text loads jieba's dictionary (about half a second).
@settings(deadline=None)
@given(texts, texts)
def test_similarity_is_symmetric_and_between_zero_and_one(first, second):
    score = similarity(first, second)
    assert 0 <= score <= 1
    assert score == similarity(second, first)


@settings(deadline=None)
@given(texts.filter(lambda text: tokens(text)))
def test_a_text_with_words_is_fully_similar_to_itself(text):
    assert similarity(text, text) == 1


def test_case_and_punctuation_do_not_count_and_a_text_without_words_repeats_nothing():
    assert similarity("Cannot LOG in!", "cannot log in") == 1
    assert similarity("", "") == 0 and similarity("?!", "?!") == 0


def test_chinese_is_cut_into_words():
    assert tokens("我无法登录我的账户") == ["我", "无法", "登录", "我", "的", "账户"]
    assert tokens("Login 失败 again") == ["login", "失败", "again"]
    # The same words in another order are alike; another request is not.
    assert similarity("我无法登录我的账户", "我的账户无法登录") > 0.9
    assert similarity("我无法登录我的账户", "请退还我上个月多收的费用") < 0.5


def test_rephrased_question_is_alike_and_another_question_is_not():
    assert similarity(f"Cannot log in\n{LOGIN}", f"Login problem\n{LOGIN}") > 0.9
    assert similarity(f"Cannot log in\n{LOGIN}", f"Refund\n{REFUND}") < 0.6


def recent(ticket_id: str = "SB-1001", minutes_ago: int = 5, status: str = "open", text: str = LOGIN) -> RecentTicket:
    return RecentTicket(ticket_id, NOW - timedelta(minutes=minutes_ago), status, "Cannot log in", text)


def choose(subject: str | None, text: str, *listed: RecentTicket):
    return find_duplicate(subject, text, listed, NOW, window=timedelta(minutes=30), merge_at=0.9, suggest_at=0.7)


def test_merge_above_merge_at_suggest_between_and_nothing_below():
    assert choose("Cannot log in", LOGIN, recent()).action == "merge"
    half = "I cannot log in to my account"
    middling = choose("Cannot log in", half, recent())
    assert middling is not None and middling.action == "suggest" and 0.7 <= middling.score < 0.9
    assert choose("Refund", REFUND, recent()) is None


def test_only_active_tickets_created_within_the_window_count_and_the_most_alike_wins():
    assert choose("Cannot log in", LOGIN, recent(minutes_ago=31)) is None
    assert choose("Cannot log in", LOGIN, recent(status="solved")) is None
    assert choose("Cannot log in", LOGIN, recent(status="pending")).ticket_id == "SB-1001"
    best = choose("Cannot log in", LOGIN, recent("SB-1001", text="I cannot log in"), recent("SB-1002", 3))
    assert best.ticket_id == "SB-1002"
    # On a tie, the earliest ticket.
    assert choose("Cannot log in", LOGIN, recent("SB-1003", 2), recent("SB-1002", 4)).ticket_id == "SB-1002"


def inbound(ticket_id: str, channel: str, text: str, subject: str = "Cannot log in") -> InboundMessage:
    return InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id=ticket_id,
        received_at=NOW,
        channel=channel,
        channel_message_id=f"<{uuid.uuid4()}@mail.example>",
        source="smtp" if channel == "email" else "contact",
        sender=ANA,
        subject=subject,
        text=text,
        reply_route=ReplyRoute(channel="email", address="ana@example.com", reply_to_id=f"{ticket_id}@mail.example"),
    )


def test_the_same_question_by_email_then_form_joins_the_first_ticket_and_the_customer_is_told():
    view = RouterView()
    first = decide_inbound(inbound("SB-1001", "email", LOGIN), view, CONFIG, NOW)
    view.absorb(first.events)
    second = decide_inbound(inbound("SB-1002", "form", LOGIN, subject="Login problem"), view, CONFIG, NOW)
    view.absorb(second.events)

    kinds = [(type(event).__name__, event.ticket_id) for event in second.events if hasattr(event, "ticket_id")]
    assert ("TicketMerged", "SB-1002") in kinds and ("MessageAdded", "SB-1001") in kinds
    assert not [event for event in second.events if isinstance(event, TicketAssigned)]
    created = next(event for event in second.events if isinstance(event, TicketCreated))
    assert created.merged_into == "SB-1001"
    closed = next(event for event in second.events if isinstance(event, StatusChanged))
    assert (closed.ticket_id, closed.to_status, closed.actor) == ("SB-1002", "closed", "system")
    merged = next(event for event in second.events if isinstance(event, TicketMerged))
    assert merged.into_ticket_id == "SB-1001"
    copied = [event for event in second.events if isinstance(event, MessageAdded) and event.ticket_id == "SB-1001"]
    assert len(copied) == 1 and copied[0].text == LOGIN
    assert len({event.event_id for event in second.events}) == len(second.events)

    (acknowledgement,) = plan(created, NotifierView(), CONFIG)
    assert "SB-1001" in acknowledgement.text and "SB-1002" not in acknowledgement.text
    assert acknowledgement.subject.startswith("[SB-1001]")
    # A third, different question is a ticket of its own.
    third = decide_inbound(inbound("SB-1003", "form", REFUND, subject="Refund"), view, CONFIG, NOW)
    assert [event.ticket_id for event in third.events if isinstance(event, TicketAssigned)] == ["SB-1003"]
    assert not [event for event in third.events if isinstance(event, (TicketMerged, DuplicateSuggested))]


def test_a_somewhat_similar_ticket_is_opened_and_suggested_in_the_earlier_thread():
    view = RouterView()
    view.absorb(decide_inbound(inbound("SB-1001", "email", LOGIN), view, CONFIG, NOW).events)
    second = decide_inbound(inbound("SB-1002", "form", "I cannot log in to my account"), view, CONFIG, NOW)
    assert [event.ticket_id for event in second.events if isinstance(event, TicketAssigned)] == ["SB-1002"]
    (suggested,) = [event for event in second.events if isinstance(event, DuplicateSuggested)]
    assert (suggested.ticket_id, suggested.duplicate_ticket_id) == ("SB-1001", "SB-1002")

    view = NotifierView(tickets={"SB-1001": TicketContext(team="support")})
    (post,) = plan(suggested, view, CONFIG)
    assert post.in_thread and post.target == "slack:C0SUPPORT" and "SB-1002" in post.text


def test_a_waiting_ticket_joined_by_a_duplicate_reopens():
    view = RouterView(recent=RecentTickets({"c_ana": [recent(status="pending")]}))
    view.owners["email:ana@example.com"] = "c_ana"
    decision = decide_inbound(inbound("SB-1002", "form", LOGIN), view, CONFIG, NOW)
    reopened = [event for event in decision.events if isinstance(event, StatusChanged) and event.ticket_id == "SB-1001"]
    assert [(event.from_status, event.to_status) for event in reopened] == [("pending", "open")]


def test_duplicates_off_with_a_zero_window():
    config = CONFIG.model_copy(update={"duplicates": CONFIG.duplicates.model_copy(update={"window": timedelta(0)})})
    view = RouterView()
    view.absorb(decide_inbound(inbound("SB-1001", "email", LOGIN), view, config, NOW).events)
    second = decide_inbound(inbound("SB-1002", "form", LOGIN), view, config, NOW)
    assert [event.ticket_id for event in second.events if isinstance(event, TicketAssigned)] == ["SB-1002"]


def test_the_read_model_keeps_each_contacts_latest_tickets_and_their_opening_text():
    view = RouterView()
    created, opened, *_ = decide_inbound(inbound("SB-1001", "email", "x" * 2000), view, CONFIG, NOW).events
    ops = projection(created)[2:]
    recent_key = contact_recent_key(created.contact.contact_id)
    assert ["ZADD", recent_key, str(int(NOW.timestamp() * 1000)), "SB-1001"] in ops
    assert ["ZREMRANGEBYRANK", recent_key, "0", "-11"] in ops
    assert ["HSETNX", "sb:ticket:SB-1001", "opening_text", "x" * TEXT_CHARS] in projection(opened)[2:]


def test_a_merged_contacts_recent_tickets_count_as_its_survivors():
    # Ana's email identity belongs to c_old, merged into c_ana: the ticket c_old opened a few minutes ago is
    # Ana's, and the same question again joins it.
    view = RouterView(recent=RecentTickets({"c_old": [recent()]}))
    view.owners["email:ana@example.com"] = "c_old"
    view.graph.parents["c_old"] = "c_ana"
    view.graph.contacts["c_ana"] = ContactRecord(tags=frozenset({"vip"}))
    decision = decide_inbound(inbound("SB-1002", "form", LOGIN), view, CONFIG, NOW)
    created = next(event for event in decision.events if isinstance(event, TicketCreated))
    assert (created.contact.contact_id, created.merged_into) == ("c_ana", "SB-1001")
    # Merged at birth, it still carries the contact's tags, as every new ticket does.
    assert created.contact_tags == ["vip"]
