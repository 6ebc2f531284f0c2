"""CSAT ratings as intake reads them: Telegram button data, the rating form, the chat frame, the page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.intake.csat_page import PAGE_HEADERS, rating_page, thanks_page
from services.intake.ratings import (
    MAX_COMMENT_CHARS,
    ChatRating,
    FormProblems,
    Rating,
    RatingForm,
    parse_callback_data,
    rating_command,
    read_rating_form,
    unanswered_request,
)
from services.intake.telegram_callbacks import ButtonPress, read_callback_query
from shared.ids import derived_id, format_ticket_id

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
ANA = {"id": 4242, "is_bot": False, "first_name": "Ana"}

ticket_ids = st.builds(
    format_ticket_id, st.from_regex(r"[A-Z]{2,5}", fullmatch=True), st.integers(min_value=0, max_value=10**9)
)


# --- Telegram callback_data -----------------------------------------------------------------------


def test_a_rating_button_names_ticket_resolution_and_score():
    assert parse_callback_data("csat:SB-1042:2:5") == Rating("SB-1042", 2, 5)


@pytest.mark.parametrize(
    "data",
    [
        "csat:SB-1042:1:0",
        "csat:SB-1042:1:6",
        "csat:SB-1042:0:3",
        "csat:SB-1042:-1:3",
        "csat:sb-1042:1:3",
        "csat:SB-1042:1",
        "csat:SB-1042:1:3:extra",
        "csat:SB-1042:1:3\n",
        "csat:SB-1042:01:3",
        "csat:SB-١٠٤٢:1:3",
        "yes",
        "",
    ],
)
def test_anything_else_is_no_rating(data):
    assert parse_callback_data(data) is None


@given(ticket_ids, st.integers(min_value=1, max_value=999_999_999), st.integers(min_value=1, max_value=5))
def test_every_rating_button_the_notifier_can_make_reads_back_and_fits_telegrams_64_bytes(ticket_id, resolution, score):
    data = f"csat:{ticket_id}:{resolution}:{score}"
    assert len(data.encode()) <= 64
    assert parse_callback_data(data) == Rating(ticket_id, resolution, score)


@given(st.text())
def test_reading_button_data_never_raises(data):
    rating = parse_callback_data(data)
    assert rating is None or 1 <= rating.score <= 5


# --- The command ----------------------------------------------------------------------------------


def test_a_rating_is_a_customers_rate_command_whose_id_is_the_resolution():
    command = rating_command(Rating("SB-1042", 1, 4, "Quick, thanks"), NOW)
    assert command.type == "command.rate" and command.agent_id == "customer"
    assert (command.ticket_id, command.resolution, command.score, command.comment) == ("SB-1042", 1, 4, "Quick, thanks")
    assert command.event_id == derived_id("csat", "SB-1042", 1)


def test_rating_the_same_resolution_again_is_the_same_command_and_a_new_resolution_is_not():
    first = rating_command(Rating("SB-1042", 1, 2), NOW)
    assert rating_command(Rating("SB-1042", 1, 5, "changed my mind"), NOW).event_id == first.event_id
    assert rating_command(Rating("SB-1042", 2, 2), NOW).event_id != first.event_id


# --- The rating form ------------------------------------------------------------------------------


def test_a_form_score_arrives_as_text_and_a_blank_comment_is_none():
    assert read_rating_form({"score": "4", "comment": "  "}) == RatingForm(score=4, comment=None)
    assert read_rating_form({"score": 5, "comment": " Great \n", "submit": ""}) == RatingForm(score=5, comment="Great")


@pytest.mark.parametrize("score", [None, "", "0", "6", "four", "4.5", [4]])
def test_a_missing_or_bad_score_is_named(score):
    fields = {"comment": "hi"} if score is None else {"score": score}
    problems = read_rating_form(fields)
    assert isinstance(problems, FormProblems) and list(problems.errors) == ["score"]
    assert "1 (poor) to 5 (excellent)" in problems.errors["score"]


def test_a_comment_over_the_limit_says_how_long_it_is():
    problems = read_rating_form({"score": "3", "comment": "x" * (MAX_COMMENT_CHARS + 1)})
    assert isinstance(problems, FormProblems)
    assert problems.errors == {"comment": "Please keep your comment under 2,000 characters (it has 2,001)."}


def test_a_comment_at_the_limit_is_taken():
    assert read_rating_form({"score": "3", "comment": "x" * MAX_COMMENT_CHARS}) == RatingForm(
        score=3, comment="x" * MAX_COMMENT_CHARS
    )


# --- The web chat's frame -------------------------------------------------------------------------


def test_the_chat_frame_carries_resolution_and_score():
    assert ChatRating.model_validate_json('{"type":"csat","resolution":1,"score":5}') == ChatRating(
        type="csat", resolution=1, score=5
    )


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"csat","resolution":1,"score":6}',
        '{"type":"csat","resolution":0,"score":3}',
        '{"type":"csat","resolution":1,"score":"3"}',
        '{"type":"csat","resolution":1,"score":true}',
        '{"type":"csat","resolution":1}',
        '{"type":"csat","resolution":1,"score":3,"ticket_id":"SB-1"}',
    ],
    ids=["score-6", "resolution-0", "score-text", "score-bool", "no-score", "names-a-ticket"],
)
def test_a_bad_chat_frame_is_refused(frame):
    with pytest.raises(ValidationError):
        ChatRating.model_validate_json(frame)


# --- Telegram callback_query updates --------------------------------------------------------------


def press(data: str | None = "csat:SB-1042:1:5", chat: dict | None = None, **query) -> dict:
    message = {"message_id": 77, "date": 1_700_000_000, "chat": chat or {"id": 4242, "type": "private"}}
    body = {"id": "q1", "from": ANA, "chat_instance": "ci", "message": message, **query}
    if data is not None:
        body["data"] = data
    return {"update_id": 9, "callback_query": body}


def test_a_rating_press_in_a_private_chat_names_chat_message_and_rating():
    assert read_callback_query(press()) == ButtonPress("q1", 4242, 77, Rating("SB-1042", 1, 5))


def test_a_press_of_another_button_is_to_be_answered_without_a_rating():
    assert read_callback_query(press("yes")) == ButtonPress("q1", 4242, 77, None)
    assert read_callback_query(press(None)) == ButtonPress("q1", 4242, 77, None)


@pytest.mark.parametrize(
    "update",
    [
        press(chat={"id": -100200, "type": "supergroup"}),
        press(chat={"id": 5555, "type": "private"}),
        press(message=None),
    ],
    ids=["group-chat", "someone-elses-chat", "no-message"],
)
def test_a_press_outside_the_pressers_own_private_chat_names_no_chat(update):
    pressed = read_callback_query(update)
    assert pressed is not None and pressed.chat_id is None and pressed.message_id is None


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 1, "message": {"message_id": 1}},
        {"update_id": 1, "callback_query": {"from": ANA, "data": "csat:SB-1:1:1"}},
        {"update_id": 1, "callback_query": "csat:SB-1:1:1"},
        ["callback_query"],
    ],
    ids=["a-message", "no-query-id", "not-an-object", "not-an-update"],
)
def test_anything_else_is_no_button_press(update):
    assert read_callback_query(update) is None


# --- The page -------------------------------------------------------------------------------------


def test_the_page_escapes_what_it_shows_and_keeps_the_customers_input():
    page = rating_page("SB-1<script>", score="4", comment="</textarea><b>hi</b>", errors={"comment": "too <long>"})
    assert "<script>" not in page and "SB-1&lt;script&gt;" in page
    assert "&lt;/textarea&gt;&lt;b&gt;hi&lt;/b&gt;" in page and "too &lt;long&gt;" in page
    assert 'value="4" required checked' in page and page.count("checked") == 1
    assert 'role="alert"' in page


def test_the_pages_load_nothing_from_elsewhere_and_leak_no_referrer():
    for page in (rating_page("SB-1042"), thanks_page("SB-1042")):
        assert "http://" not in page and "https://" not in page and "<script" not in page
    assert PAGE_HEADERS["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in PAGE_HEADERS["Content-Security-Policy"]


ASKED = {"status": "solved", "resolutions": "2", "csat_asked": "2", "csat_resolution": "1"}


def test_a_solved_ticket_asked_for_a_rating_not_given_asks_again():
    assert unanswered_request(ASKED) == 2
    assert unanswered_request({key: value for key, value in ASKED.items() if key != "csat_resolution"}) == 2


@pytest.mark.parametrize(
    "changed",
    [
        {"csat_resolution": "2"},  # rated already
        {"status": "open"},  # reopened: the request lapsed
        {"status": "closed"},
        {"resolutions": "3", "status": "solved"},  # solved again without a request (no public reply)
        {"csat_asked": None},  # never asked (a merge, an auto-close, no public reply)
        {"csat_asked": "x"},
    ],
    ids=["rated", "reopened", "closed", "later-resolution-not-asked", "never-asked", "garbled"],
)
def test_no_request_is_repeated_when_it_was_answered_lapsed_or_never_made(changed):
    ticket = {key: value for key, value in {**ASKED, **changed}.items() if value is not None}
    assert unanswered_request(ticket) is None


@given(st.dictionaries(st.sampled_from(["status", "resolutions", "csat_asked", "csat_resolution"]), st.text()))
def test_any_hash_gives_a_resolution_asked_or_none(ticket):
    resolution = unanswered_request(ticket)
    assert resolution is None or (ticket["status"] == "solved" and resolution >= 1)
