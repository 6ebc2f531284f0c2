"""The `/sb` slash command's parsing and answers (services.intake.slack_slash): pure."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.slack_slash import (
    MAX_LISTED,
    SUBCOMMANDS,
    contact_targets,
    help_answer,
    help_text,
    parse,
    show_target,
    ticket_details,
    ticket_list,
)


@pytest.mark.parametrize(
    ("text", "subcommand", "argument"),
    [
        ("mine", "mine", ""),
        ("  QUEUE ", "queue", ""),
        ("show sb-1042", "show", "sb-1042"),
        ("away", "away", ""),
        ("", "help", ""),
        ("dance now", "help", "dance now"),
    ],
)
def test_parse(text, subcommand, argument):
    request = parse(text)
    assert (request.subcommand, request.argument) == (subcommand, argument)


@given(st.text(max_size=80))
def test_any_text_is_a_known_subcommand(text):
    assert parse(text).subcommand in SUBCOMMANDS


def test_show_takes_a_ticket_id_in_any_case():
    assert show_target(parse("show sb-1042")) == "SB-1042"
    assert show_target(parse("show")) is None
    assert show_target(parse("show 1042")) is None


def test_an_unknown_subcommand_is_named_before_the_help():
    answer = help_answer(parse("dance <now>"))
    assert answer.startswith("`/sb dance &lt;now&gt;` is not a Switchboard command.") and answer.endswith(help_text())
    assert help_answer(parse("help")) == help_text()


def ticket(number: int, priority: str = "normal", subject: str = "Login fails") -> dict[str, str]:
    return {"id": f"SB-{number}", "subject": subject, "status": "open", "priority": priority}


def test_a_list_puts_the_most_pressing_first_and_escapes_subjects():
    answer = ticket_list("Yours", [ticket(1002), ticket(1001, "urgent", "a <b> & c"), ticket(1003, "low")], empty="-")
    assert answer.splitlines() == [
        "*Yours* (3)",
        "• `SB-1001` a &lt;b&gt; &amp; c — open, urgent",
        "• `SB-1002` Login fails — open, normal",
        "• `SB-1003` Login fails — open, low",
    ]
    assert ticket_list("Yours", [], empty="None.") == "*Yours*\nNone."


def test_a_long_list_stops_and_says_how_many_more():
    answer = ticket_list("Queue", [ticket(1000 + n, subject="x" * 500) for n in range(MAX_LISTED + 7)], empty="-")
    lines = answer.splitlines()
    assert len(lines) == 1 + MAX_LISTED + 1 and lines[-1] == "…and 7 more."
    assert len(answer) < 3000


def test_details_show_status_assignee_contact_and_rating():
    fields = {
        "id": "SB-1042",
        "subject": "Refund",
        "status": "solved",
        "priority": "high",
        "team": "support",
        "channel": "email",
        "created_at": "2026-12-01T10:00:00+00:00",
        "assignee_name": "Ana Ortiz",
        "tags": json.dumps(["billing"]),
        "csat_score": "2",
        "csat_comment": "slow",
    }
    contact = {"id": "c1", "name": "María López", "emails": ["maria@example.com"], "phones": []}
    lines = ticket_details(fields, contact).splitlines()
    assert lines[0] == "*SB-1042* Refund"
    assert "Status: solved · Priority: high · Team: support" in lines
    assert "Assignee: Ana Ortiz" in lines and "Contact: María López (maria@example.com)" in lines
    assert "Tags: billing" in lines and "CSAT: 2/5 “slow”" in lines
    queued = ticket_details({**fields, "assignee_name": ""}, None)
    assert "Assignee: nobody (in the team's queue)" in queued and "Contact: unknown" in queued


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("merge c_one c_two", ("c_two", "c_one")),
        ("unmerge c_two", ("c_two", None)),
        ("merge c_one", None),
        ("unmerge c_one c_two", None),
        ("merge c_one <@U0ANA>", None),
    ],
)
def test_merge_and_unmerge_name_the_merged_contact_and_the_survivor(text, target):
    assert contact_targets(parse(text)) == target
