"""Email defence through the running stack: bounces, strangers in a thread, our own mail, outages, TLS."""

from __future__ import annotations

import os
import signal
import smtplib
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from shared.topics import INBOUND, Topics
from switchboard.infra import recorded_infra, start_infra
from tests.conftest import free_port
from tests.integration.test_email_stack import SUPPORT, EmailStack, email_stack, mail, ticket_of, wait_for_smtp
from tests.support import ServiceProcesses, reply_as_agent, start_redis, topic_size

pytestmark = pytest.mark.integration
__all__ = ["email_stack"]  # the fixture, shared with the email stack tests


def dsn_bounce(failed: str, our_message_id: str) -> bytes:
    """An RFC 3464 report as postfix sends it, returning the headers of the message we sent."""
    return f"""From: MAILER-DAEMON@mx.customer.example (Mail Delivery System)
To: {SUPPORT}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-ID: <bounce-1@mx.customer.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host mx.customer.example.

<{failed}>: host mx.customer.example said: 550 5.1.1 user unknown

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.example

Final-Recipient: rfc822; {failed}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--B
Content-Type: text/rfc822-headers

From: {SUPPORT}
To: {failed}
Message-ID: {our_message_id}
Subject: whatever we sent

--B--
""".replace("\n", "\r\n").encode()


def test_a_bounce_is_recorded_and_stops_mail_to_the_address(email_stack: EmailStack, smtp_sink, fake_slack):
    email_stack.send(mail("Account locked", "Please unlock", sender="gone@customer.example"))
    [ack] = smtp_sink.wait_for(lambda m: m.recipients == ["gone@customer.example"])
    ticket_id = ticket_of(ack.message)
    with smtplib.SMTP("127.0.0.1", email_stack.smtp_port, timeout=30) as client:
        client.sendmail("", [SUPPORT], dsn_bounce("gone@customer.example", ack.message["Message-ID"]))
    ticket = email_stack.ticket(ticket_id, lambda t: len(t["messages"]) == 2)
    assert [m["kind"] for m in ticket["messages"]] == ["message", "bounce"]

    reply_as_agent(email_stack.services.settings, ticket_id, "Unlocked.")
    # The notifier mirrors the reply into Slack right after delivering (here: withholding) it.
    fake_slack.wait_for_calls_sync("chat.postMessage", predicate=lambda c: "Unlocked." in c.args["text"])
    assert [m.recipients for m in smtp_sink.received] == [["gone@customer.example"]], "only the acknowledgement"


def test_a_stranger_replying_into_a_thread_is_a_note_for_review(email_stack: EmailStack, smtp_sink):
    first = mail("Refund", "Where is my refund?")
    email_stack.send(first)
    [ack] = smtp_sink.wait_for(lambda m: m.recipients == ["ana@customer.example"])
    ticket_id = ticket_of(ack.message)
    email_stack.send(mail("Re: Refund", "I am not Ana", sender="mallory@else.example", In_Reply_To=first["Message-ID"]))
    ticket = email_stack.ticket(ticket_id, lambda t: len(t["messages"]) == 2)
    stranger = ticket["messages"][1]
    assert stranger["review"] == "the sender is not the ticket's contact"
    assert ticket["reply_route"]["address"] == "ana@customer.example", "replies still go to the contact"


def test_mail_from_our_own_address_opens_no_ticket(email_stack: EmailStack, smtp_sink):
    email_stack.send(mail("Loop?", "echo", sender=SUPPORT))
    email_stack.send(mail("Real", "question", sender="zoe@customer.example"))
    [ack] = smtp_sink.wait_for(lambda m: m.recipients == ["zoe@customer.example"])
    assert ticket_of(ack.message) == "SB-1001", "the looping mail got no ticket number"


def test_starttls_is_offered_when_a_certificate_is_configured(services: ServiceProcesses, tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    services.start("router")
    smtp_port = free_port()
    services.start(
        "intake-smtp",
        SWITCHBOARD_SMTP_PORT=str(smtp_port),
        SWITCHBOARD_OPS_PORT=str(free_port()),
        SWITCHBOARD_SMTP_TLS_CERT=str(cert),
        SWITCHBOARD_SMTP_TLS_KEY=str(key),
    )
    wait_for_smtp(smtp_port, services)
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=ssl.create_default_context(cafile=str(cert)))
        client.ehlo()
        refused = client.sendmail("ana@customer.example", [SUPPORT], mail("Over TLS", "secret").as_bytes())
    assert refused == {}


async def test_mail_is_deferred_with_451_while_the_store_is_down_and_taken_after(
    services: ServiceProcesses, settings, tmp_path: Path
):
    redis_port, smtp_port = free_port(), free_port()
    own_redis = start_redis(redis_port, tmp_path)
    try:
        services.start(
            "intake-smtp",
            SWITCHBOARD_SMTP_PORT=str(smtp_port),
            SWITCHBOARD_OPS_PORT=str(free_port()),
            SWITCHBOARD_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        )
        wait_for_smtp(smtp_port, services)
        own_redis.terminate()
        own_redis.wait()
        message = mail("During the outage", "Is anyone there?")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client:
            with pytest.raises(smtplib.SMTPDataError) as deferred:
                client.send_message(message)
        assert deferred.value.smtp_code == 451
        assert await topic_size(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(INBOUND)) == 0

        own_redis = start_redis(redis_port, tmp_path)
        # The sending MTA retries later, as 451 told it to.
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client:
            assert client.send_message(message) == {}
        assert await topic_size(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(INBOUND)) == 1
    finally:
        own_redis.terminate()
        own_redis.wait()


def test_a_broker_outage_is_451_for_mail_and_503_for_forms(services: ServiceProcesses, tmp_path: Path):
    """A stack of its own, whose Kafka this test kills: every sender is told to retry."""
    own = start_infra(tmp_path / "own-infra", detached=False, prefer_default_ports=False)
    try:
        own_infra = {
            "SWITCHBOARD_KAFKA_BOOTSTRAP": own.endpoints.kafka_bootstrap,
            "SWITCHBOARD_REDIS_URL": own.endpoints.redis_url,
        }
        smtp_port = free_port()
        services.start(
            "intake-smtp", SWITCHBOARD_SMTP_PORT=str(smtp_port), SWITCHBOARD_OPS_PORT=str(free_port()), **own_infra
        )
        base_url = services.start_http(**own_infra)
        wait_for_smtp(smtp_port, services)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client:
            assert client.send_message(mail("Before", "fine")) == {}
        os.kill(recorded_infra(tmp_path / "own-infra")["kafka_pid"], signal.SIGKILL)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=120) as client:
            with pytest.raises(smtplib.SMTPDataError) as deferred:
                client.send_message(mail("During", "is anyone there?"))
        assert deferred.value.smtp_code == 451
        form = {"name": "Ana", "email": "ana@example.com", "subject": "During", "message": "anyone?"}
        response = httpx.post(f"{base_url}/v1/forms/contact", json=form, timeout=120)
        assert response.status_code == 503
        assert httpx.get(f"{base_url}/readyz", timeout=30).status_code == 503
    finally:
        own.stop()
