"""What of a ticket's messages a web-chat customer sees when the session resumes."""

from __future__ import annotations

import pytest

from services.intake.chat import shown_to_customer


def message(**fields) -> dict:
    return {"kind": "message", "author": "customer", "internal": False, "review": None, **fields}


@pytest.mark.parametrize(
    "stored",
    [message(), message(author="agent")],
    ids=["customer", "agent-reply"],
)
def test_what_customer_and_agents_wrote_to_each_other_is_shown(stored):
    assert shown_to_customer(stored)


@pytest.mark.parametrize(
    "stored",
    [
        message(author="agent", internal=True),
        message(review="a different sender"),
        message(kind="edit"),
        message(author="system", kind="auto_reply"),
        message(author="system"),
    ],
    ids=["internal-note", "kept-for-review", "edit", "machine-mail", "system"],
)
def test_notes_reviews_edits_and_machine_mail_are_not_shown(stored):
    assert not shown_to_customer(stored)
