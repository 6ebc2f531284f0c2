"""A mail that is slow to read holds up nobody (issue 7, field report 13).

intake-smtp reads mail in worker processes: while one session sends a flood of blank lines (or any
other text that once made the patterns backtrack), another session is answered at once, and a
mail that cannot be read within the bound is refused with a clear 554 instead of stalling intake.
intake-imap keeps such a mail on the inbound DLQ and goes on with the mailbox. The one-second bounds
are what the issue demands, generous for a loaded machine.
"""

from __future__ import annotations

import smtplib
import threading
import time
from pathlib import Path

import pytest

from shared.settings import Settings
from shared.topics import DLQ_SUFFIX, INBOUND, Topics
from tests.conftest import free_port
from tests.dovecot import DovecotServer
from tests.integration.test_email_stack import SUPPORT, wait_for_smtp
from tests.integration.test_imap_stack import dovecot, raw_mail, wait_until
from tests.support import ServiceProcesses, decoded, read_topic

pytestmark = pytest.mark.integration
__all__ = ["dovecot"]  # the fixture, shared with the IMAP stack tests

FLOOD = Path(__file__).parents[1] / "fixtures" / "field-reports" / "13-blank-line-flood.eml"
HEADERS = b"From: Omar Haddad <omar@customer.example>\nTo: support@example.com\nSubject: Order 8812 missing\n"
READ_TIMEOUT_SECONDS = 5


def flood(copies: int) -> bytes:
    """The field report with its run of blank lines repeated `copies` times."""
    head, _, body = FLOOD.read_bytes().partition(b"\n\n")
    greeting, _, rest = body.partition(b"\n")
    blank_lines = rest[: len(rest) - len(rest.lstrip(b"\n"))]
    return head + b"\n\n" + greeting + b"\n" + blank_lines * copies + rest.lstrip(b"\n")


def body_of(lines: bytes, message_id: str) -> bytes:
    return HEADERS + f"Message-ID: <{message_id}@customer.example>\n\nHello\n".encode() + lines + b"Regards\n"


# HTML nested 120,000 levels deep (under 1 MB even with CRLF, so that its DLQ record fits Kafka's
# default limit): the HTML sanitiser's work grows with the square of the depth, far past the bound.
# Any mail that slow would do.
NESTED_HTML = HEADERS + b"Message-ID: <nested@customer.example>\nContent-Type: text/html\n\n" + b"<div>\n" * 120_000

SLOW_ONCE = {
    "the field report": flood(1),
    "the field report with 10x the blank lines": flood(10),
    "20,000 blank lines": body_of(b"\n" * 20_000, "blank"),
    "20,000 lines of spaces": body_of(b"   \n" * 20_000, "spaces"),
    "20,000 bare signature dashes": body_of(b"--\n" * 20_000, "dashes"),
    "20,000 lines of '<'": body_of(b"<\n" * 20_000, "brackets"),
}


def send(port: int, raw: bytes) -> tuple[int, str]:
    """The server's reply to DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo()
        client.mail("omar@customer.example")
        client.rcpt(SUPPORT)
        try:
            code, text = client.data(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        except smtplib.SMTPDataError as refused:
            code, text = refused.smtp_code, refused.smtp_error
        return code, text.decode()


def noop_latencies_while_sending(port: int, raw: bytes) -> tuple[tuple[int, str], list[float]]:
    """Another session's NOOP round trips (seconds) for as long as `raw` is being sent and answered."""
    replies: list[tuple[int, str]] = []
    latencies: list[float] = []
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as other:
        sender = threading.Thread(target=lambda: replies.append(send(port, raw)))
        sender.start()
        while sender.is_alive() or not latencies:
            start = time.monotonic()
            code, _ = other.noop()
            latencies.append(time.monotonic() - start)
            assert code == 250
        sender.join()
    return replies[0], latencies


@pytest.fixture
def smtp_port(services: ServiceProcesses) -> int:
    port = free_port()
    services.start(
        "intake-smtp",
        SWITCHBOARD_SMTP_PORT=str(port),
        SWITCHBOARD_OPS_PORT=str(free_port()),
        SWITCHBOARD_MAIL_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT_SECONDS),
    )
    wait_for_smtp(port, services)
    return port


def test_another_session_gets_its_noop_answered_within_a_second_while_a_flood_is_read(smtp_port: int):
    for name, raw in SLOW_ONCE.items():
        (code, text), latencies = noop_latencies_while_sending(smtp_port, raw)
        assert code == 250 and "queued on ticket" in text, f"{name}: {code} {text}"
        assert max(latencies) < 1.0, f"{name}: a NOOP waited {max(latencies):.2f} s"


def test_a_mail_not_read_within_the_bound_is_refused_with_554_and_the_next_one_is_read(smtp_port: int):
    (code, text), latencies = noop_latencies_while_sending(smtp_port, NESTED_HTML)
    assert code == 554 and f"took longer than {READ_TIMEOUT_SECONDS} s" in text, f"{code} {text}"
    assert max(latencies) < 1.0, f"a NOOP waited {max(latencies):.2f} s"

    code, text = send(smtp_port, body_of(b"Still there?\n", "after"))
    assert code == 250 and "queued on ticket" in text, f"{code} {text}"


async def test_imap_keeps_a_mail_not_read_within_the_bound_on_the_dlq_and_goes_on(
    services: ServiceProcesses, settings: Settings, dovecot: DovecotServer
):
    services.start(
        "intake-imap",
        SWITCHBOARD_IMAP_HOST=dovecot.host,
        SWITCHBOARD_IMAP_PORT=str(dovecot.port),
        SWITCHBOARD_IMAP_SSL="false",
        SWITCHBOARD_IMAP_USER=dovecot.user,
        SWITCHBOARD_IMAP_PASSWORD=dovecot.password,
        SWITCHBOARD_IMAP_POLL_SECONDS="0.5",
        SWITCHBOARD_OPS_PORT=str(free_port()),
        SWITCHBOARD_MAIL_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT_SECONDS),
    )
    nested_uid = dovecot.deliver(NESTED_HTML.replace(b"\n", b"\r\n"))
    later_uid = dovecot.deliver(raw_mail("Printer jammed", "Tray 2"))
    wait_until(lambda: "\\Seen" in dovecot.flags(later_uid), "the mail after it to be taken")
    assert "\\Seen" in dovecot.flags(nested_uid)

    inbound = Topics(settings.topic_prefix).name(INBOUND)
    [kept] = await read_topic(settings.kafka_bootstrap, inbound + DLQ_SUFFIX, at_least=1)
    assert dict(kept.headers)["x-error-reason"].startswith(b"mail not read: reading it took longer than")
    assert kept.value.count(b"<div>") == 120_000, "the whole mail is kept"
    [message] = decoded(await read_topic(settings.kafka_bootstrap, inbound, at_least=1))
    assert message["subject"] == "Printer jammed"
