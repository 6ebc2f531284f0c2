"""Cross-channel duplicates on the real broker: the same question by email and by form is one ticket."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import API_TOKEN
from tests.integration.test_email_stack import EmailStack, email_stack, mail, ticket_of  # noqa: F401 (fixture)
from tests.support import wait_for_ticket

pytestmark = pytest.mark.integration

ANA = "ana@customer.example"
LOGIN = "I cannot log in to my account since yesterday, the password reset mail never arrives."
REFUND = "Please refund the second charge on my last invoice, I was billed twice for December."


def post_form(base_url: str, subject: str, message: str) -> str:
    form = {"name": "Ana", "email": ANA, "subject": subject, "message": message}
    response = httpx.post(f"{base_url}/v1/forms/contact", json=form, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["ticket_id"]


def test_the_same_question_by_email_then_by_form_is_one_ticket_and_the_customer_is_told(
    email_stack: EmailStack,  # noqa: F811 (the fixture imported above)
    smtp_sink,
):
    email_stack.send(mail("Cannot log in", LOGIN, sender=ANA))
    [first_ack] = smtp_sink.wait_for(lambda m: m.recipients == [ANA])
    first = ticket_of(first_ack.message)

    # Minutes later the customer fills in the web form with the same question.
    second = post_form(email_stack.base_url, "Login problem", LOGIN)
    assert second != first
    acks = smtp_sink.wait_for(lambda m: m.recipients == [ANA], count=2)
    told = acks[1].message
    assert told["Subject"] == f"[{first}] Re: Login problem"
    assert f"added your message to your request {first}" in told.get_content()

    merged = wait_for_ticket(email_stack.base_url, second, API_TOKEN, lambda t: t["status"] == "closed")
    assert merged["merged_into"] == first and merged["assignee"] is None
    assert [entry["type"] for entry in merged["history"]][-2:] == ["ticket.merged", "ticket.status_changed"]
    ticket = email_stack.ticket(first, lambda t: len(t["messages"]) == 2)
    assert [message["channel"] for message in ticket["messages"]] == ["email", "form"]
    assert ticket["status"] in ("new", "open")

    # A clearly different question is a ticket of its own, acknowledged as such.
    third = post_form(email_stack.base_url, "Refund", REFUND)
    other = email_stack.ticket(third)
    assert other["merged_into"] is None and other["assignee"] is not None
    third_ack = smtp_sink.wait_for(lambda m: m.recipients == [ANA], count=3)[2].message
    assert third_ack["Subject"] == f"[{third}] Re: Refund"
