"""The `/sb` slash command's parsing and answers (services.intake.slack_slash): pure."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.intake.slack_slash import (
    MAX_LISTED,
    SUBCOMMANDS,
    TagChange,
    contact_targets,
    help_answer,
    help_text,
    parse,
    show_target,
    tag_change,
    tag_listing,
    ticket_details,
    ticket_list,
)
from shared import i18n
from shared.contact_commands import contact_refusal, tag_command


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


@pytest.mark.parametrize(
    ("text", "change"),
    [
        ("tag sb-1042 +VIP -trial", TagChange("SB-1042", ("vip",), ("trial",))),
        ("tag c_one vip +beta vip", TagChange("c_one", ("vip", "beta"))),
        ("tag c_one -trial", TagChange("c_one", (), ("trial",))),
        ("tag c_one +vip -trial +a:b.c-d", TagChange("c_one", ("vip", "a:b.c-d"), ("trial",))),
        ("tag c_one +v<ip> - +", TagChange("c_one", invalid=("+v<ip>", "-", "+"))),
        ("tag c_one --vip", TagChange("c_one", invalid=("--vip",))),
        ("tag c_one " + "x" * 65, TagChange("c_one", invalid=("x" * 65,))),
        ("tag SB-1042", None),
        ("tag", None),
    ],
)
def test_tag_takes_a_target_then_tags_to_add_and_remove(text, change):
    assert tag_change(parse(text)) == change


def test_a_tag_change_names_its_ticket_or_its_contact_and_lists_itself_as_typed():
    change = tag_change(parse("tag SB-1042 vip -trial"))
    assert change.ticket_id == "SB-1042" and tag_listing(change) == "+vip -trial"
    assert tag_change(parse("tag c_one vip")).ticket_id is None


_TAG = st.from_regex(r"[a-z0-9_][a-z0-9_:.-]{0,20}", fullmatch=True)


@given(
    target=st.sampled_from(["SB-1042", "sb-7", "c_4f1d2a9b8c7e6d5f"]),
    add=st.lists(_TAG, max_size=5),
    remove=st.lists(_TAG, max_size=5),
    bare=st.booleans(),
    order=st.randoms(use_true_random=False),
)
def test_tags_typed_in_any_order_are_the_changes_the_cli_would_send(target, add, remove, bare, order):
    words = [tag if bare else f"+{tag}" for tag in add] + [f"-{tag}" for tag in remove]
    order.shuffle(words)
    change = tag_change(parse(" ".join(["tag", target, *words])))
    if not words:
        assert change is None
        return
    assert change.invalid == ()
    assert (set(change.add), set(change.remove)) == (set(add), set(remove))
    assert len(change.add) == len(set(change.add)) and len(change.remove) == len(set(change.remove))
    # The same tags pass the CLI's check (the command's own model).
    tag_command(uuid.uuid4(), datetime.now(UTC), "ana", "c_one", change.add, change.remove)


@given(st.text(max_size=80))
@example("c_one --a +-a -+b")
def test_a_tag_change_is_parsed_or_refused_and_never_raises(text):
    change = tag_change(parse(f"tag {text}"))
    if change is None:
        return
    for word in change.invalid:
        # As tag_change reads a word: one leading "-" removes, one leading "+" adds ("--a" names the tag "-a").
        name = word[1:] if word.startswith("-") else word.removeprefix("+")
        with pytest.raises(ValidationError):
            tag_command(uuid.uuid4(), datetime.now(UTC), "ana", "c_one", [name], [])


@pytest.mark.parametrize("locale", ["en", "zh-Hans"])
def test_the_help_lists_tag_in_each_language(locale):
    assert "• `tag SB-1042 +vip -trial` — " in help_text(i18n.texts(locale)).splitlines()[6]


# The read model's contacts by ID (`ReadModel.contact`): c_old is merged into c_one, so it shows c_one.
CONTACTS = {"c_one": {"id": "c_one"}, "c_two": {"id": "c_two"}, "c_old": {"id": "c_one", "merged_from": "c_old"}}


@pytest.mark.parametrize(
    ("contact_id", "into", "tagging", "english", "chinese"),
    [
        ("c_nobody", "c_one", False, "there is no contact c_nobody", "没有联系人 c_nobody"),
        ("c_two", "c_nobody", False, "there is no contact c_nobody", "没有联系人 c_nobody"),
        ("c<b>", None, True, "there is no contact c<b>", "没有联系人 c<b>"),
        ("c_old", "c_one", False, "c_old and c_one are one contact already", "c_old 和 c_one 已经是同一个联系人"),
        ("c_two", None, False, "c_two is not merged into another contact", "c_two 并未合并到其他联系人"),
    ],
)
def test_a_contact_command_the_router_would_refuse_says_why_in_the_agents_language(
    contact_id, into, tagging, english, chinese
):
    reason = contact_refusal(CONTACTS, contact_id, into, tagging=tagging)
    assert reason is not None
    assert reason.text(i18n.texts("en")) == english
    assert reason.text(i18n.texts("zh-Hans")) == chinese
    zh = i18n.texts("zh-Hans")
    assert zh("sb.contacts.refused", reason=reason.text(zh)) == f"未执行：{chinese}。"


@pytest.mark.parametrize(
    ("contact_id", "into", "tagging"),
    [("c_two", "c_one", False), ("c_old", None, False), ("c_two", None, True), ("c_old", None, True)],
)
def test_a_contact_command_the_router_would_apply_is_not_refused(contact_id, into, tagging):
    assert contact_refusal(CONTACTS, contact_id, into, tagging=tagging) is None
