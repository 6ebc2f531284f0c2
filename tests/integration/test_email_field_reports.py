"""Field reports of issue 7 through the running stack (intake-smtp → Kafka → router → notifier)."""

from __future__ import annotations

import smtplib

import pytest

from tests.integration.test_email_stack import SUPPORT, EmailStack, email_stack, mail, ticket_of
from tests.unit.test_email_field_reports import field_report

pytestmark = pytest.mark.integration
__all__ = ["email_stack"]  # the fixture, shared with the email stack tests


def send_raw(stack: EmailStack, sender: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as client:
        client.sendmail(sender, [SUPPORT], raw)


def test_a_polish_out_of_office_reply_opens_nothing_and_gets_nothing(email_stack: EmailStack, smtp_sink):
    customer = "katarzyna.nowak@example.com"
    email_stack.send(mail("Zwrot towaru", "Chcę zwrócić towar.", sender=customer))
    [ack] = smtp_sink.wait_for(lambda m: m.recipients == [customer])
    ticket_id = ticket_of(ack.message)
    # Field report 18, answering our acknowledgement (no RFC 3834 headers, only the Outlook prefix).
    raw = field_report("18-ooo-polish-subject-only.eml")
    raw = raw.replace(b"<sb-1042-ack@example.org>", ack.message["Message-ID"].encode()).replace(
        b"SB-1042", ticket_id.encode()
    )
    send_raw(email_stack, customer, raw)
    ticket = email_stack.ticket(ticket_id, lambda t: len(t["messages"]) == 2)
    assert [m["kind"] for m in ticket["messages"]] == ["message", "auto_reply"]

    email_stack.send(mail("Another question", "Hello", sender="control@example.net"))
    smtp_sink.wait_for(lambda m: m.recipients == ["control@example.net"])
    assert [m.recipients for m in smtp_sink.received].count([customer]) == 1, "only the first acknowledgement"


def test_outlook_and_list_mail_open_tickets_without_acknowledgement_and_winmail_dat_is_unpacked(
    email_stack: EmailStack, smtp_sink
):
    send_raw(email_stack, "jana.novak@example.com", field_report("05-outlook-x-auto-response-suppress.eml"))
    send_raw(email_stack, "stefan.maier@example.com", field_report("10-tnef-winmail-dat.eml"))
    listed = mail("Export broken", "The CSV export is empty.", sender="lee@lists.example.net")
    listed["List-Id"] = "Customer forum <forum.lists.example.net>"
    email_stack.send(listed)
    [ack_for_tnef] = smtp_sink.wait_for(lambda m: m.recipients == ["stefan.maier@example.com"])
    tnef_ticket = email_stack.ticket(ticket_of(ack_for_tnef.message))
    [attachment] = tnef_ticket["messages"][0]["attachments"]
    assert (attachment["filename"], attachment["content_type"]) == ("Angebot.txt", "text/plain")

    tickets = [email_stack.ticket(ticket_id) for ticket_id in ("SB-1001", "SB-1002", "SB-1003")]
    subjects = {ticket["subject"] for ticket in tickets}
    assert {"Invoice 4711 charged twice", "Export broken", "Angebot anbei"} == subjects
    assert all(ticket["messages"][0]["kind"] == "message" for ticket in tickets)
    email_stack.send(mail("Control", "Hello", sender="control@example.net"))
    smtp_sink.wait_for(lambda m: m.recipients == ["control@example.net"])
    acknowledged = sorted(r for m in smtp_sink.received for r in m.recipients)
    assert acknowledged == ["control@example.net", "stefan.maier@example.com"]
