"""Email through the running stack: SMTP in, threading, loop defence, acknowledgement and replies out."""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from shared.ids import is_our_message_id
from tests.conftest import API_TOKEN, free_port
from tests.support import ServiceProcesses, reply_as_agent, wait_for_ticket

pytestmark = pytest.mark.integration

SUPPORT = "support@example.com"


def mail(subject: str, body: str, *, sender: str = "ana@customer.example", **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Ana <{sender}>"
    message["To"] = SUPPORT
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="customer.example")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


class EmailStack:
    def __init__(self, services: ServiceProcesses, smtp_port: int, base_url: str):
        self.services = services
        self.smtp_port = smtp_port
        self.base_url = base_url

    def send(self, message: EmailMessage, recipients: list[str] | None = None) -> None:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as client:
            client.send_message(message, to_addrs=recipients or [SUPPORT])

    def ticket(self, ticket_id: str, ready=lambda ticket: ticket["assignee"] is not None) -> dict:
        return wait_for_ticket(self.base_url, ticket_id, API_TOKEN, ready)


@pytest.fixture
def email_stack(services: ServiceProcesses) -> EmailStack:
    smtp_port = free_port()
    for name in ("router", "notifier"):
        services.start(name)
    base_url = services.start_http()
    services.start("intake-smtp", SWITCHBOARD_SMTP_PORT=str(smtp_port), SWITCHBOARD_OPS_PORT=str(free_port()))
    wait_for_smtp(smtp_port, services)
    return EmailStack(services, smtp_port, base_url)


def wait_for_smtp(port: int, services: ServiceProcesses) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                client.noop()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"intake-smtp did not listen:\n{services.log('intake-smtp')}") from None
            time.sleep(0.2)


def ticket_of(message: EmailMessage) -> str:
    return message["X-Switchboard-Ticket"]


def test_mail_becomes_a_ticket_acknowledged_and_threaded_by_reply_and_by_tag(email_stack: EmailStack, smtp_sink):
    first = mail("Cannot log in", "My password is refused.\n\n-- \nAna, ACME")
    email_stack.send(first)
    [ack] = smtp_sink.wait_for(lambda m: m.recipients == ["ana@customer.example"])
    ticket_id = ticket_of(ack.message)
    assert ack.message["Subject"] == f"[{ticket_id}] Re: Cannot log in"
    assert ack.message["In-Reply-To"] == first["Message-ID"]
    assert ack.message["Auto-Submitted"] == "auto-replied"
    ticket = email_stack.ticket(ticket_id)
    assert ticket["channel"] == "email" and ticket["messages"][0]["text"] == "My password is refused."

    # The customer answers the acknowledgement: In-Reply-To threads it.
    email_stack.send(mail("Re: " + ack.message["Subject"], "Still broken", In_Reply_To=ack.message["Message-ID"]))
    # A fresh mail that only carries the tag in its subject.
    email_stack.send(mail(f"More info [{ticket_id}]", "Screenshot attached soon"))
    # The same mail delivered twice (a retrying MTA) is one message.
    email_stack.send(first)
    ticket = email_stack.ticket(ticket_id, lambda t: len(t["messages"]) >= 3)
    assert [m["text"] for m in ticket["messages"]] == [
        "My password is refused.",
        "Still broken",
        "Screenshot attached soon",
    ]
    assert len([m for m in smtp_sink.received if m.recipients == ["ana@customer.example"]]) == 1


def test_an_out_of_office_reply_to_the_acknowledgement_opens_nothing_and_gets_nothing(email_stack, smtp_sink):
    email_stack.send(mail("Order 7 missing", "Where is it?", sender="bob@customer.example"))
    [ack] = smtp_sink.wait_for(lambda m: m.recipients == ["bob@customer.example"])
    ticket_id = ticket_of(ack.message)
    email_stack.send(
        mail(
            "Automatic reply: " + ack.message["Subject"],
            "I am out of the office until Monday.",
            sender="bob@customer.example",
            Auto_Submitted="auto-replied",
            In_Reply_To=ack.message["Message-ID"],
        )
    )
    email_stack.send(mail("Out of office", "Away.", sender="carol@customer.example", Auto_Submitted="auto-replied"))
    email_stack.send(mail("Hello again", "A real question", sender="dave@customer.example"))
    smtp_sink.wait_for(lambda m: m.recipients == ["dave@customer.example"])
    ticket = email_stack.ticket(ticket_id, lambda t: len(t["messages"]) == 2)
    assert [m["kind"] for m in ticket["messages"]] == ["message", "auto_reply"]
    assert sorted(r for m in smtp_sink.received for r in m.recipients) == [
        "bob@customer.example",
        "dave@customer.example",
    ], "no acknowledgement for either out-of-office mail"


def test_an_agent_reply_continues_the_customers_email_thread(email_stack: EmailStack, smtp_sink):
    first = mail("Invoice question", "Why two charges?", References="<older@customer.example>")
    email_stack.send(first)
    [ack] = smtp_sink.wait_for(lambda m: "Invoice question" in m.message["Subject"])
    ticket_id = ticket_of(ack.message)
    email_stack.ticket(ticket_id)
    reply_as_agent(email_stack.services.settings, ticket_id, "One was a pre-authorisation.")
    [reply] = smtp_sink.wait_for(lambda m: "pre-authorisation" in m.message.get_content())
    assert reply.message["Subject"] == f"[{ticket_id}] Re: Invoice question"
    assert reply.message["In-Reply-To"] == first["Message-ID"]
    # The customer's thread, with our acknowledgement of it in between; their message last (the parent).
    references = reply.message["References"].split()
    assert references[0] == "<older@customer.example>" and references[-1] == first["Message-ID"]
    assert all(is_our_message_id(ours.strip("<>"), {"example.com"}) for ours in references[1:-1])


def test_relaying_is_refused_with_550_and_oversize_mail_with_552(email_stack: EmailStack):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        email_stack.send(mail("Spam", "relay me"), recipients=["someone@elsewhere.example"])
    [(code, text)] = refused.value.recipients.values()
    assert code == 550 and b"5.1.1" in text
    huge = mail("Big", ("x" * 99 + "\n") * (300 * 1024))  # 30 MB of ordinary lines
    # smtplib announces the size (RFC 1870), so the server refuses at MAIL FROM before the upload.
    with pytest.raises(smtplib.SMTPSenderRefused) as big:
        email_stack.send(huge)
    assert big.value.smtp_code == 552
    # A plain-SMTP client cannot announce it: the server counts while receiving.
    with smtplib.SMTP("127.0.0.1", email_stack.smtp_port, timeout=60) as client:
        client.helo("old-mta.example")
        with pytest.raises(smtplib.SMTPDataError) as too_much:
            client.sendmail("ana@customer.example", [SUPPORT], huge.as_bytes(policy=huge.policy.clone(linesep="\r\n")))
    assert too_much.value.smtp_code == 552
