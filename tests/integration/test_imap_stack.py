"""intake-imap through the running stack, against a real Dovecot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from tests.conftest import API_TOKEN, free_port
from tests.dovecot import DovecotServer
from tests.support import ServiceProcesses, wait_for_ticket

pytestmark = pytest.mark.integration


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[DovecotServer]:
    with DovecotServer(tmp_path / "dovecot") as server:
        yield server


def raw_mail(subject: str, body: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Eve <eve@customer.example>"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="customer.example")
    message.set_content(body)
    return message.as_bytes()


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def start_poller(services: ServiceProcesses, dovecot: DovecotServer) -> None:
    services.start(
        "intake-imap",
        SWITCHBOARD_IMAP_HOST=dovecot.host,
        SWITCHBOARD_IMAP_PORT=str(dovecot.port),
        SWITCHBOARD_IMAP_SSL="false",
        SWITCHBOARD_IMAP_USER=dovecot.user,
        SWITCHBOARD_IMAP_PASSWORD=dovecot.password,
        SWITCHBOARD_IMAP_POLL_SECONDS="0.5",
        SWITCHBOARD_OPS_PORT=str(free_port()),
    )


def test_polled_mail_becomes_a_ticket_is_marked_seen_and_never_taken_twice(services: ServiceProcesses, dovecot):
    services.start("router")
    base_url = services.start_http()
    start_poller(services, dovecot)
    original = raw_mail("VPN down", "Since this morning")
    uid = dovecot.deliver(original)
    wait_until(lambda: "\\Seen" in dovecot.flags(uid), "the mail to be marked seen")

    services.stop_all()
    services.start("router")
    base_url = services.start_http()
    start_poller(services, dovecot)
    # The same message again (e.g. copied back by a user): one message on one ticket.
    copy_uid = dovecot.deliver(original)
    wait_until(lambda: "\\Seen" in dovecot.flags(copy_uid), "the copy to be taken")
    later_uid = dovecot.deliver(raw_mail("Other thing", "Printer"))
    wait_until(lambda: "\\Seen" in dovecot.flags(later_uid), "the later mail to be taken")

    tickets = {
        wait_for_ticket(base_url, f"SB-{n}", API_TOKEN, lambda t: t["assignee"] is not None)["subject"]: n
        for n in (1001, 1002)
    }
    assert sorted(tickets) == ["Other thing", "VPN down"]
    vpn = wait_for_ticket(base_url, f"SB-{tickets['VPN down']}", API_TOKEN, lambda t: True)
    assert [m["text"] for m in vpn["messages"]] == ["Since this morning"]
