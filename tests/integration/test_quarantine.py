"""Quarantine through the running stack: machine mail for no ticket and our own mail coming back are
kept (the .eml and an event with the reason), listed by the CLI and the read API, counted, and
rebuilt by `switchboard replay`."""

from __future__ import annotations

import json
import smtplib
from dataclasses import dataclass

import httpx
import pytest
import redis

from shared.read_model import UNDELIVERABLE_KEY
from shared.settings import Settings
from tests.conftest import API_TOKEN, free_port
from tests.integration.test_email_defence import dsn_bounce
from tests.integration.test_email_stack import SUPPORT, mail, ticket_of, wait_for_smtp
from tests.support import ServiceProcesses, eventually, switchboard_cli

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@dataclass
class Stack:
    settings: Settings
    smtp_port: int
    ops_url: str
    base_url: str

    def send(self, message) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as client:
            client.ehlo()
            client.mail(message["From"].addresses[0].addr_spec)
            client.rcpt(SUPPORT)
            return client.data(message.as_bytes())

    def listed(self, *args: str) -> list[dict]:
        result = switchboard_cli(self.settings, "quarantine", "list", "--json", *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def counted(self, reason_code: str) -> float:
        metrics = httpx.get(f"{self.ops_url}/metrics", timeout=10).text
        line = f'switchboard_quarantined_messages_total{{channel="email",reason_code="{reason_code}"}} '
        return float(next(row.removeprefix(line) for row in metrics.splitlines() if row.startswith(line)))


def start_stack(services: ServiceProcesses, *names: str) -> Stack:
    for name in names:
        services.start(name)
    smtp_port, ops_port = free_port(), free_port()
    base_url = services.start_http()
    services.start("intake-smtp", SWITCHBOARD_SMTP_PORT=str(smtp_port), SWITCHBOARD_OPS_PORT=str(ops_port))
    wait_for_smtp(smtp_port, services)
    return Stack(services.settings, smtp_port, f"http://127.0.0.1:{ops_port}", base_url)


def test_an_auto_reply_to_no_ticket_is_quarantined_listed_counted_and_rebuilt_by_replay(
    services: ServiceProcesses, smtp_sink
):
    stack = start_stack(services, "router", "notifier")
    out_of_office = mail(
        "Automatic reply: your order",
        "I am out of the office until Monday.",
        sender="carol@customer.example",
        Auto_Submitted="auto-replied",
    )
    code, _ = stack.send(out_of_office)
    assert code == 250
    # A customer writing afterwards gets the first ticket number: the auto-reply took none.
    stack.send(mail("A real question", "Where is my parcel?", sender="dave@customer.example"))
    [ack] = smtp_sink.wait_for(lambda m: m.recipients == ["dave@customer.example"])
    assert ticket_of(ack.message) == "SB-1001"
    assert [m.recipients for m in smtp_sink.received] == [["dave@customer.example"]], "no acknowledgement"

    [listed] = stack.listed()
    assert listed["kind"] == "auto_reply" and listed["reason_code"] == "machine_mail_no_ticket"
    assert "answering no known ticket" in listed["reason"]
    assert listed["sender"]["email"] == "carol@customer.example"
    assert listed["subject"] == "Automatic reply: your order"
    assert listed["excerpt"].strip() == "I am out of the office until Monday."
    assert listed["channel_message_id"] == out_of_office["Message-ID"].strip("<>")

    response = httpx.get(f"{stack.base_url}/v1/quarantine", headers=AUTH, timeout=10)
    assert response.status_code == 200 and response.json()["messages"] == [listed]
    one = httpx.get(f"{stack.base_url}/v1/quarantine/{listed['message_id']}", headers=AUTH, timeout=10)
    assert one.status_code == 200 and one.json() == listed
    assert httpx.get(f"{stack.base_url}/v1/quarantine", timeout=10).status_code == 401

    original = switchboard_cli(stack.settings, "quarantine", "show", listed["message_id"], "--original")
    assert original.returncode == 0, original.stderr
    assert out_of_office["Message-ID"] in original.stdout
    assert "I am out of the office until Monday." in original.stdout
    table = switchboard_cli(stack.settings, "quarantine", "list")
    assert f"{listed['message_id']}  email  machine_mail_no_ticket  carol@customer.example" in table.stdout
    assert stack.counted("machine_mail_no_ticket") == 1.0

    services.stop_all()
    redis.Redis.from_url(stack.settings.redis_url).flushdb()
    replayed = switchboard_cli(stack.settings, "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 quarantined messages" in replayed.stdout
    assert stack.listed() == [listed]
    base_url = services.start_http()
    assert httpx.get(f"{base_url}/v1/quarantine/{listed['message_id']}", headers=AUTH, timeout=10).json() == listed


def test_our_own_mail_and_a_bounce_for_no_ticket_are_quarantined_once_each(services: ServiceProcesses):
    stack = start_stack(services, "router")
    looped = mail("Re: [SB-1001] Your request", "our own words", sender=SUPPORT)
    assert stack.send(looped)[0] == 250
    assert stack.send(looped)[0] == 250, "a redelivery is accepted again"
    ours = mail("Fwd: our acknowledgement", "it came back", sender="relay@customer.example")
    ours.replace_header("Message-ID", "<sb-1001.0123456789abcdef0123456789abcdef@example.com>")
    assert stack.send(ours)[0] == 250
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as client:
        client.sendmail("", [SUPPORT], dsn_bounce("gone@customer.example", "<never-sent@elsewhere.example>"))

    loops = eventually(lambda: stack.listed("--reason", "own_mail_loop"), "two loops listed")
    assert sorted(entry["reason"] for entry in loops) == ["mail from our own address", "our own message came back"]
    assert {entry["kind"] for entry in loops} == {"loop"}
    [bounce] = stack.listed("--reason", "machine_mail_no_ticket")
    assert bounce["kind"] == "bounce" and bounce["subject"] == "Undelivered Mail Returned to Sender"
    assert len(stack.listed("--channel", "email")) == 3 and stack.listed("--channel", "telegram") == []
    filtered = httpx.get(f"{stack.base_url}/v1/quarantine?reason=own_mail_loop&limit=1", headers=AUTH, timeout=10)
    assert filtered.json()["messages"] == loops[:1]
    assert stack.counted("own_mail_loop") == 2.0, "the redelivered loop counts once"
    # The bounce still tells the router that the address is gone.
    store = redis.Redis.from_url(stack.settings.redis_url)
    eventually(lambda: store.sismember(UNDELIVERABLE_KEY, "gone@customer.example"), "address marked undeliverable")
