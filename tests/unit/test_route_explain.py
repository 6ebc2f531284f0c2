"""`switchboard route explain FILE`: the router's classification of a message, explained, with no side effects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from shared.config import load_config
from shared.events import InboundMessage, Sender
from shared.settings import EXAMPLE_CONFIG
from switchboard.cli import main
from switchboard.explain import print_explanation

SPANISH_REFUND = """\
From: =?utf-8?q?Luc=C3=ADa?= <lucia@cliente.example>
To: support@example.com
Subject: Reembolso del pedido 4471
Message-ID: <r1@cliente.example>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hola, me cobraron dos veces el pedido 4471. Quiero un reembolso, es urgente.
"""


def explain(path: Path):
    runner = CliRunner(env={"COLUMNS": "250"})
    return runner.invoke(main, ["route", "explain", str(path), "--config", str(EXAMPLE_CONFIG)])


def test_a_mail_is_read_by_the_intake_parser_and_every_rule_is_explained(tmp_path):
    path = tmp_path / "refund.eml"
    path.write_bytes(SPANISH_REFUND.encode())
    result = explain(path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("language" in line and "es (detected)" in line for line in lines)
    assert any("customer's language" in line and "en (the desk default)" in line for line in lines)
    assert any("urgent" in line and "yes: 'urgente'" in line for line in lines)
    rules = [line for line in lines if "rules fired" not in line]
    [urgent] = [line for line in rules if "urgent raised to high" in line]
    assert "fired" in urgent and "the message is urgent" in urgent
    [refunds] = [line for line in rules if "refunds to payments" in line and "fired" in line]
    assert "channel email in [email, form]" in refunds and "matches at 'reembolso'" in refunds and "stop" in refunds
    for key, value in [("team", "payments"), ("priority", "high"), ("tags", "urgent, refund"), ("skills", "billing")]:
        assert any(f" {key} " in line and f" {value} " in line for line in lines), (key, result.output)
    # The eligible agents, and why each other member was not chosen: Chloé speaks no Spanish.
    assert any(" ana " in line and " yes " in line and " chosen " in line for line in lines), result.output
    assert any(" chloe " in line and " no " in line and "does not speak es" in line for line in lines), result.output


def test_a_message_as_json_shows_why_a_rule_did_not_fire(tmp_path):
    message = InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id="SB-1001",
        received_at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
        channel="telegram",
        channel_message_id="7:1",
        source="telegram",
        sender=Sender(name="Li", telegram_user_id=7),
        text="我想要退款",
    )
    path = tmp_path / "message.json"
    path.write_text(message.model_dump_json())
    result = explain(path)
    assert result.exit_code == 0, result.output
    [refunds] = [line for line in result.output.splitlines() if "refunds to payments" in line]
    assert " no " in refunds and "channel telegram not in [email, form]" in refunds
    assert any(" team " in line and " support " in line for line in result.output.splitlines())


def test_machine_mail_opens_no_ticket_and_a_file_that_is_no_message_is_refused(tmp_path):
    auto_reply = tmp_path / "away.eml"
    auto_reply.write_bytes(SPANISH_REFUND.replace("Subject:", "Auto-Submitted: auto-replied\nSubject:").encode())
    result = explain(auto_reply)
    assert result.exit_code == 0 and "opens no ticket" in result.output
    junk = tmp_path / "junk.json"
    junk.write_text('{"text": "hello"}')
    refused = explain(junk)
    assert refused.exit_code == 1 and "not an inbound message" in refused.output


def test_the_sender_is_shown_with_each_identity_proved_or_claimed_and_its_contact(tmp_path):
    path = tmp_path / "refund.eml"
    path.write_bytes(SPANISH_REFUND.encode())
    result = CliRunner(env={"COLUMNS": "250", "SWITCHBOARD_REDIS_URL": ""}).invoke(
        main, ["route", "explain", str(path), "--config", str(EXAMPLE_CONFIG)]
    )
    assert any(
        "email:lucia@cliente.example" in line and "verified" in line and "not looked up" in line
        for line in result.output.splitlines()
    ), result.output

    console = Console(record=True, width=250)
    form = InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id="SB-1001",
        received_at=datetime.now(UTC),
        channel="form",
        channel_message_id="form:1",
        source="contact",
        sender=Sender(email="lucia@cliente.example", phone="+34600111222"),
        subject="Reembolso",
        text="Quiero un reembolso",
    )
    owners = {"email:lucia@cliente.example": "c_1", "phone:+34600111222": "c_2"}
    print_explanation(form, load_config(EXAMPLE_CONFIG), console, owners=owners)
    shown = console.export_text()
    assert any(
        "email:lucia@cliente.example" in line and "claimed" in line and "c_1" in line for line in shown.splitlines()
    )
    assert "identities of different contacts" in shown
