"""Acknowledgements and agent replies reach the customer on their channel; the SLA clock stops."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.topics import TICKETS, Topics
from tests.conftest import API_TOKEN, free_port
from tests.support import ServiceProcesses, read_topic, switchboard_cli, wait_for_ticket, wait_until_consumed

pytestmark = pytest.mark.integration

FORM = {"name": "Ana", "email": "ana@example.com", "subject": "Cannot log in", "message": "My password is refused."}


def post_form(base_url: str, form: dict = FORM) -> str:
    response = httpx.post(f"{base_url}/v1/forms/contact", json=form, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["ticket_id"]


def test_form_customer_gets_an_acknowledgement_then_the_agents_reply_by_email(
    services: ServiceProcesses, smtp_sink, fake_slack
):
    for name in ("router", "sla", "notifier"):
        services.start(name)
    base_url = services.start_http()
    ticket_id = post_form(base_url)

    [ack] = smtp_sink.wait_for(lambda mail: ticket_id in mail.message["Subject"])
    assert ack.recipients == ["ana@example.com"]
    assert ack.message["Subject"] == f"[{ticket_id}] Re: Cannot log in"
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert ack.message["Message-ID"].endswith("@example.com>")
    assert ticket_id in ack.message.get_content()

    wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["sla"]["first_response_status"] == "running")
    result = switchboard_cli(
        services.settings, "ticket", "reply", ticket_id, "Please try resetting it from the login page."
    )
    assert result.returncode == 0, result.stderr

    [reply] = smtp_sink.wait_for(lambda mail: "resetting" in mail.message.get_content())
    assert reply.message["Subject"] == f"[{ticket_id}] Re: Cannot log in"
    assert reply.message["Auto-Submitted"] is None
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["sla"]["first_response_status"] == "met")
    assert [m["author"] for m in ticket["messages"]] == ["customer", "agent"]
    fake_slack.wait_for_calls_sync(
        "chat.postMessage", predicate=lambda c: "thread_ts" in c.args and "resetting" in c.args["text"]
    )


def test_replying_to_an_unknown_ticket_is_refused(services: ServiceProcesses):
    result = switchboard_cli(services.settings, "ticket", "reply", "SB-99999", "hello")
    assert result.returncode == 1
    assert "no ticket SB-99999" in result.stderr


async def wait_until_notified(settings, fake_slack, ticket_ids: list[str]) -> None:
    """Every ticket announced, and every delivery of every ticket event made (the notifier committed them)."""
    for ticket_id in ticket_ids:
        await fake_slack.wait_for_calls(
            "chat.postMessage",
            predicate=lambda c, t=ticket_id: c.args["channel"] == "C0SUPPORT" and t in c.args["text"],
        )
    await wait_until_consumed(
        settings.kafka_bootstrap,
        Topics(settings.topic_prefix).group("switchboard-notifier"),
        Topics(settings.topic_prefix).name(TICKETS),
    )


async def test_acknowledgements_are_limited_per_contact(services: ServiceProcesses, settings, smtp_sink, fake_slack):
    services.start("router")
    services.start("notifier")
    base_url = services.start_http()
    # Five different requests (the same one again would be merged into the first as a duplicate).
    questions = [
        ("Cannot log in", "My password is refused."),
        ("Invoice", "Where is my December invoice?"),
        ("Address change", "Please ship future orders to our new office in Lyon."),
        ("Refund", "I returned the blue chair three weeks ago and got no money back."),
        ("API limits", "Which rate limit applies to the export endpoint?"),
    ]
    tickets = [post_form(base_url, {**FORM, "subject": subject, "message": text}) for subject, text in questions]
    await wait_until_notified(settings, fake_slack, tickets)
    # Typed into the form and never proved: one an hour (`acknowledgements.claimed_per_hour`, issue #16).
    assert len(smtp_sink.received) == 1


async def test_no_acknowledgement_to_no_reply_addresses(services: ServiceProcesses, settings, smtp_sink, fake_slack):
    services.start("router")
    services.start("notifier")
    base_url = services.start_http()
    quiet = post_form(base_url, {**FORM, "email": "no-reply@example.com"})
    loud = post_form(base_url, {**FORM, "email": "bob@example.com"})
    await wait_until_notified(settings, fake_slack, [quiet, loud])
    assert [mail.recipients for mail in smtp_sink.received] == [["bob@example.com"]]


async def test_a_relay_that_stays_down_sends_the_event_to_the_dlq_and_the_notifier_goes_on(
    services: ServiceProcesses, settings, fake_slack
):
    services.start("router")
    services.start(
        "notifier",
        SWITCHBOARD_SMTP_RELAY_PORT=str(free_port()),  # nothing listens there
        SWITCHBOARD_RETRY_DEADLINE_SECONDS="3",
    )
    base_url = services.start_http()
    ticket_id = post_form(base_url)

    [dead] = await read_topic(settings.kafka_bootstrap, Topics(settings.topic_prefix).dlq(TICKETS), at_least=1)
    headers = {key: value.decode() for key, value in dead.headers}
    assert headers["x-consumer-group"] == Topics(settings.topic_prefix).group("switchboard-notifier")
    assert headers["x-error-reason"].startswith("acknowledgement to email:ana@example.com: gave up after")
    assert json.loads(dead.value) == {**json.loads(dead.value), "type": "ticket.created", "ticket_id": ticket_id}
    # The acknowledgement was given up on, the agents still hear about the ticket.
    fake_slack.wait_for_calls_sync("chat.postMessage", predicate=lambda c: ticket_id in c.args["text"])
