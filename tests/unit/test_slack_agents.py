"""What agents' Slack interactions ask of a ticket (services.intake.slack_agents, slack_modals): pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.slack_agents import (
    InputErrors,
    Refused,
    button_command,
    click_of,
    modal_origin,
    rating_command,
    rating_thread,
    submission_of,
    submitted_command,
    thread_command,
    thread_post,
)
from services.intake.slack_modals import reassign_modal, text_modal
from shared import i18n
from shared.config import load_config
from shared.events import (
    AgentNote,
    AgentReply,
    AssignTicket,
    ClaimTicket,
    EscalateTicket,
    RateTicket,
    SetStatus,
    SlackOrigin,
)
from shared.ids import derived_id
from shared.settings import EXAMPLE_CONFIG
from tests.fuzz_inputs import json_values

CONFIG = load_config(EXAMPLE_CONFIG)
ANA = CONFIG.agent("ana")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def press(action_id: str, value: str = "SB-1042", *, user: str = "U0ANA", action_ts: str = "1764590400.000200") -> dict:
    return {
        "type": "block_actions",
        "user": {"id": user},
        "trigger_id": "1.2.3",
        "container": {"type": "message", "message_ts": "1764590000.000100", "channel_id": "C0SUPPORT"},
        "channel": {"id": "C0SUPPORT"},
        "message": {"ts": "1764590000.000100"},
        "actions": [{"action_id": action_id, "value": value, "action_ts": action_ts, "type": "button"}],
    }


@pytest.mark.parametrize(
    ("action_id", "kind", "status"),
    [
        ("sb_claim", ClaimTicket, None),
        ("sb_escalate", EscalateTicket, None),
        ("sb_pending", SetStatus, "pending"),
        ("sb_resolve", SetStatus, "solved"),
        ("sb_reopen", SetStatus, "open"),
    ],
)
def test_each_card_button_is_its_command(action_id, kind, status):
    command = button_command(click_of(press(action_id)), ANA, NOW)
    assert isinstance(command, kind)
    assert (command.ticket_id, command.agent_id) == ("SB-1042", "ana")
    assert getattr(command, "status", None) == status
    assert command.occurred_at == datetime.fromtimestamp(1764590400.0002, UTC)
    assert command.origin.channel_id == "C0SUPPORT" and command.origin.message_ts == "1764590000.000100"


def test_the_same_press_is_the_same_command_id_and_another_press_another():
    once, again = (button_command(click_of(press("sb_claim")), ANA, NOW) for _ in range(2))
    later = button_command(click_of(press("sb_claim", action_ts="1764590401.000200")), ANA, NOW)
    assert once.event_id == again.event_id != later.event_id


@pytest.mark.parametrize("value", ["", "sb-1042", "SB-1042; DROP", "SB-1042\n", "SB-١٠٤٢", "x" * 500])
def test_a_button_naming_no_ticket_is_refused(value):
    with pytest.raises(Refused):
        button_command(click_of(press("sb_claim", value)), ANA, NOW)


def test_a_refusal_is_told_in_the_reader_s_language_and_logged_in_english():
    with pytest.raises(Refused) as refused:
        button_command(click_of(press("sb_claim", "nope")), ANA, NOW)
    assert str(refused.value) == "This button names no ticket ('nope'); nothing was done."
    assert refused.value.text(i18n.texts("en")) == str(refused.value)
    assert refused.value.text(i18n.texts("zh-Hans")) == "此按钮没有指向任何工单（'nope'）；未执行任何操作。"
    # A text already worded stays as it is.
    assert Refused("评分应由客户本人给出。").text(i18n.texts("en")) == "评分应由客户本人给出。"


@pytest.mark.parametrize("body", [{}, {"user": {"id": "U0ANA"}}, {"user": "U0ANA", "actions": [{}]}, {"actions": "x"}])
def test_a_payload_without_user_or_action_is_refused(body):
    with pytest.raises(Refused):
        click_of(body)


def test_a_csat_button_is_the_customer_s_rating_of_that_resolution():
    rating = rating_command(click_of(press("sb_csat", "SB-1042:2:4", user="U0CUSTOMER")), NOW)
    assert isinstance(rating, RateTicket)
    assert (rating.ticket_id, rating.resolution, rating.score, rating.agent_id) == ("SB-1042", 2, 4, "customer")
    assert rating.event_id == derived_id("csat", "SB-1042", 2)


def test_a_csat_button_counts_in_the_thread_it_was_clicked_in():
    in_thread = press("sb_csat", "SB-1042:1:5", user="U0CUSTOMER")
    in_thread["container"]["channel_id"] = "C0SHARED"
    in_thread["message"]["thread_ts"] = "1764580000.000001"
    assert rating_thread(click_of(in_thread)) == "slack:C0SHARED:1764580000.000001"
    # Posted as the thread's root (no thread_ts), the message is the thread.
    assert rating_thread(click_of(press("sb_csat", "SB-1042:1:5"))) == "slack:C0SUPPORT:1764590000.000100"
    nowhere = press("sb_csat", "SB-1042:1:5")
    del nowhere["container"], nowhere["channel"]
    assert rating_thread(click_of(nowhere)) is None


@given(st.one_of(st.text(max_size=60), st.from_regex(r"\ASB-\d{1,6}:\d{1,3}:\d\Z")))
def test_any_csat_value_is_a_rating_or_refused(value):
    try:
        rating = rating_command(click_of(press("sb_csat", value)), NOW)
    except Refused:
        return
    assert f"{rating.ticket_id}:{rating.resolution}:{rating.score}" == value


def view(callback_id: str, values: dict, *, metadata: str = "SB-1042") -> dict:
    return {
        "type": "view_submission",
        "user": {"id": "U0ANA"},
        "view": {
            "id": "V1",
            "hash": "h1",
            "callback_id": callback_id,
            "private_metadata": metadata,
            "state": {"values": values},
        },
    }


def typed(text: str) -> dict:
    return {"text": {"text": {"type": "plain_text_input", "value": text}}}


def chosen(value: str) -> dict:
    return {"assignee": {"assignee": {"type": "static_select", "selected_option": {"value": value}}}}


@pytest.mark.parametrize(
    ("callback_id", "values", "kind", "fields"),
    [
        ("sb_reply_modal", typed(" Fixed.\n"), AgentReply, {"text": "Fixed."}),
        ("sb_note_modal", typed("refund ok"), AgentNote, {"text": "refund ok"}),
        ("sb_reassign_modal", chosen("agent:ben"), AssignTicket, {"to_agent": "ben", "to_team": None}),
        ("sb_reassign_modal", chosen("team:support"), AssignTicket, {"to_agent": None, "to_team": "support"}),
    ],
)
def test_a_modal_submission_is_its_command(callback_id, values, kind, fields):
    command = submitted_command(submission_of(view(callback_id, values)), ANA, CONFIG, NOW)
    assert isinstance(command, kind)
    assert (command.ticket_id, command.agent_id, command.origin.user_id) == ("SB-1042", "ana", "U0ANA")
    assert {name: getattr(command, name) for name in fields} == fields
    assert command.event_id == derived_id("slack-view", "V1", "h1")


@pytest.mark.parametrize(
    ("callback_id", "values", "block"),
    [
        ("sb_reply_modal", typed(" \n\t"), "text"),
        ("sb_note_modal", {}, "text"),
        ("sb_reply_modal", typed("x" * 20_001), "text"),
        ("sb_reassign_modal", chosen("agent:nobody"), "assignee"),
        ("sb_reassign_modal", chosen("team:ghosts"), "assignee"),
        ("sb_reassign_modal", {}, "assignee"),
    ],
    ids=["blank-reply", "no-note", "too-long", "unknown-agent", "unknown-team", "nothing-chosen"],
)
def test_input_to_correct_is_an_error_on_its_block(callback_id, values, block):
    with pytest.raises(InputErrors) as raised:
        submitted_command(submission_of(view(callback_id, values)), ANA, CONFIG, NOW)
    assert set(raised.value.errors) == {block}


@pytest.mark.parametrize(
    "body",
    [view("other_modal", typed("x")), view("sb_reply_modal", typed("x"), metadata="not a ticket"), {}],
)
def test_a_form_that_is_not_ours_is_refused(body):
    with pytest.raises(Refused):
        submission_of(body)


def message(**fields) -> dict:
    return {
        "type": "message",
        "channel": "C0SUPPORT",
        "user": "U0ANA",
        "text": "Fixed it",
        "ts": "1764590500.000300",
        "thread_ts": "1764590000.000100",
        **fields,
    }


def test_an_agent_s_thread_reply_is_a_reply_with_where_it_was_written():
    post = thread_post(message(), CONFIG)
    assert post is not None and post.conversation == "slack:C0SUPPORT:1764590000.000100"
    reply = thread_command(post, "SB-1042")
    assert isinstance(reply, AgentReply) and reply.text == "Fixed it"
    assert reply.event_id == derived_id("slack-message", "C0SUPPORT", "1764590500.000300")
    assert reply.origin.message_ts == "1764590500.000300" and reply.origin.thread_ts == "1764590000.000100"


@given(prefix=st.sampled_from(["note:", "NOTE:", "Note:", "  nOtE:"]), rest=st.text(min_size=1, max_size=40))
def test_a_note_prefix_in_any_case_keeps_the_rest_internal(prefix, rest):
    post = thread_post(message(text=prefix + rest), CONFIG)
    assert post is not None
    command = thread_command(post, "SB-1042")
    expected = post.text[post.text.lower().index("note:") + len("note:") :].strip()
    if not expected:
        assert command is None
    else:
        assert isinstance(command, AgentNote) and command.text == expected


@pytest.mark.parametrize(
    "event",
    [
        message(user="U0CUSTOMER"),
        message(thread_ts=None),
        message(thread_ts="1764590500.000300"),
        message(bot_id="B0BOT"),
        message(subtype="message_changed"),
        message(subtype="message_deleted"),
        message(channel="C0CUSTOMERS"),
        message(ts="not a ts"),
    ],
    ids=["not-an-agent", "top-level", "thread-root", "bot", "edit", "delete", "not-a-team-channel", "malformed"],
)
def test_what_is_no_agent_thread_reply_is_ignored(event):
    event = {key: value for key, value in event.items() if value is not None}
    assert thread_post(event, CONFIG) is None


def test_a_reply_modal_names_its_ticket_and_input():
    modal = text_modal("reply", "SB-1042")
    assert (modal["type"], modal["callback_id"], modal["private_metadata"]) == ("modal", "sb_reply_modal", "SB-1042")
    [block] = modal["blocks"]
    assert block["block_id"] == block["element"]["action_id"] == "text"
    assert block["element"]["type"] == "plain_text_input" and block["element"]["multiline"] is True
    assert len(modal["title"]["text"]) <= 24 and len(text_modal("note", "ABCDE-1234567")["title"]["text"]) <= 24


def test_the_reassign_modal_lists_the_team_s_agents_and_every_team():
    modal = reassign_modal("SB-1042", CONFIG.team("support"), CONFIG)
    [block] = modal["blocks"]
    assert block["block_id"] == block["element"]["action_id"] == "assignee"
    options = {option["value"]: option["text"]["text"] for option in block["element"]["options"]}
    assert options == {
        "agent:ana": "Ana Ortiz",
        "agent:ben": "Ben Okafor",
        "agent:chloe": "Chloé Martin",
        "agent:lena": "Lena Weber",
        "team:support": "Customer Support (queue)",
        "team:payments": "Payments and refunds (queue)",
    }


def anything_or(strategy):
    return st.one_of(strategy, json_values)


@given(
    user=anything_or(st.fixed_dictionaries({"id": st.sampled_from(["U0ANA", "U0CUSTOMER"])})),
    action_id=anything_or(st.sampled_from(["sb_claim", "sb_pending", "sb_csat", "sb_other"])),
    value=anything_or(st.sampled_from(["SB-1042", "SB-1042:1:5", "SB-1042:0:9"])),
    action_ts=anything_or(st.just("1764590400.000200")),
    container=json_values,
)
def test_any_block_actions_payload_is_a_command_or_refused(user, action_id, value, action_ts, container):
    body = {
        "user": user,
        "container": container,
        "actions": [{"action_id": action_id, "value": value, "action_ts": action_ts}],
    }
    try:
        click = click_of(body)
        if click.action_id == "sb_csat":
            rating_command(click, NOW)
        else:
            button_command(click, ANA, NOW)
    except Refused:
        pass


@given(
    callback_id=anything_or(st.sampled_from(["sb_reply_modal", "sb_note_modal", "sb_reassign_modal"])),
    metadata=anything_or(st.just("SB-1042")),
    values=anything_or(st.sampled_from([typed("hello"), chosen("agent:ben"), chosen("team:x")])),
    view_id=anything_or(st.just("V1")),
)
def test_any_view_submission_is_a_command_input_errors_or_refused(callback_id, metadata, values, view_id):
    body = {
        "user": {"id": "U0ANA"},
        "view": {"id": view_id, "callback_id": callback_id, "private_metadata": metadata, "state": {"values": values}},
    }
    try:
        submitted_command(submission_of(body), ANA, CONFIG, NOW)
    except (Refused, InputErrors):
        pass


@given(event=st.dictionaries(st.sampled_from(["channel", "user", "ts", "thread_ts", "subtype", "text"]), json_values))
def test_any_message_event_in_a_team_channel_is_read_or_ignored(event):
    post = thread_post({"type": "message", "channel": "C0SUPPORT", **event}, CONFIG)
    if post is not None:
        thread_command(post, "SB-1042")


def test_a_modal_s_command_is_shown_where_the_modal_was_opened():
    opened_from = modal_origin(click_of(press("sb_reply")))
    command = submitted_command(submission_of(view("sb_reply_modal", typed("hi"))), ANA, CONFIG, NOW, opened_from)
    assert command.origin == SlackOrigin(user_id="U0ANA", channel_id="C0SUPPORT", thread_ts="1764590000.000100")


def test_an_agent_s_files_are_named_so_that_the_agent_is_told_they_were_not_sent():
    shared = message(subtype="file_share", files=[{"id": "F1", "name": "invoice.pdf"}])
    post = thread_post(shared, CONFIG)
    assert post is not None and post.files == ("invoice.pdf",)
    assert thread_command(post, "SB-1042").text == "Fixed it"
