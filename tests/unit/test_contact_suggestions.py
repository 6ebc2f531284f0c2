"""A merge suggestion in Slack: what the notifier plans and posts, and what its buttons ask (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.slack_agents import (
    KEEP_CONTACTS_BUTTON,
    MERGE_CONTACTS_BUTTON,
    Refused,
    click_of,
    contact_button_command,
)
from services.notifier import contact_suggestions
from services.notifier.plan import NotifierView, TicketContext, plan
from shared.config import load_config
from shared.events import KeepContactsApart, MergeContacts, MergeSuggested
from shared.settings import EXAMPLE_CONFIG
from tests.unit.test_slack_agents import press

CONFIG = load_config(EXAMPLE_CONFIG)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def suggested(reason: str = "they are two different Telegram users") -> MergeSuggested:
    return MergeSuggested(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        ticket_id="SB-1044",
        contact_id="c_new",
        other_contact_id="c_old",
        identity="email:<!channel>@example.com",
        reason=reason,
    )


def test_a_suggestion_is_a_post_in_the_ticket_s_thread_with_merge_and_keep_apart_buttons():
    event = suggested()
    view = NotifierView(tickets={"SB-1044": TicketContext(team="support")})

    [delivery] = plan(event, view, CONFIG)

    assert (delivery.purpose, delivery.target, delivery.in_thread) == ("merge_suggestion", "slack:C0SUPPORT", True)
    assert delivery.key == f"{event.event_id}:merge" and delivery.contacts == ("c_new", "c_old")
    assert "c_new" in delivery.text and "c_old" in delivery.text and "two different Telegram users" in delivery.text
    assert "<!channel>" not in delivery.text, "what a customer typed is escaped"
    _, actions = contact_suggestions.slack_blocks(delivery.ticket_id, delivery.text, delivery.contacts)
    assert [(button["action_id"], button["value"]) for button in actions["elements"]] == [
        (MERGE_CONTACTS_BUTTON, "SB-1044:c_new:c_old"),
        (KEEP_CONTACTS_BUTTON, "SB-1044:c_new:c_old"),
    ]
    # The intake's buttons are the notifier's.
    assert (contact_suggestions.MERGE_BUTTON, contact_suggestions.KEEP_APART_BUTTON) == (
        MERGE_CONTACTS_BUTTON,
        KEEP_CONTACTS_BUTTON,
    )


def test_merge_asks_for_the_ticket_s_contact_to_be_merged_into_the_other_and_keep_apart_keeps_them_apart():
    merge = contact_button_command(
        click_of(press(MERGE_CONTACTS_BUTTON, "SB-1044:c_new:c_old")), CONFIG.agent("ana"), NOW
    )

    assert isinstance(merge, MergeContacts)
    assert (merge.ticket_id, merge.contact_id, merge.into_contact_id, merge.agent_id) == (
        "SB-1044",
        "c_new",
        "c_old",
        "ana",
    )
    assert merge.origin.channel_id == "C0SUPPORT"
    kept = contact_button_command(
        click_of(press(KEEP_CONTACTS_BUTTON, "SB-1044:c_new:c_old")), CONFIG.agent("ana"), NOW
    )
    assert isinstance(kept, KeepContactsApart)
    assert (kept.ticket_id, kept.contact_id, kept.other_contact_id, kept.agent_id) == (
        "SB-1044",
        "c_new",
        "c_old",
        "ana",
    )


@given(st.text(max_size=80))
def test_any_other_value_is_refused_or_names_a_ticket_and_two_contacts(value):
    try:
        merge = contact_button_command(click_of(press(MERGE_CONTACTS_BUTTON, value)), CONFIG.agent("ana"), NOW)
    except Refused:
        return
    assert f"{merge.ticket_id}:{merge.contact_id}:{merge.into_contact_id}" == value


@pytest.mark.parametrize("value", ["SB-1044", "SB-1044:c_new", "SB-1044:c new:c_old", "x:c_new:c_old"])
def test_a_value_switchboard_did_not_make_is_refused(value):
    with pytest.raises(Refused):
        contact_button_command(click_of(press(MERGE_CONTACTS_BUTTON, value)), CONFIG.agent("ana"), NOW)
