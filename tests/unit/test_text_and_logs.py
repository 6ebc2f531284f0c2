import json
import logging
import uuid
from datetime import UTC, datetime

from services.notifier.slack_text import assignment_text, escape
from shared.events import ContactSummary, TicketAssigned
from shared.logs import JsonFormatter, redact
from shared.settings import Settings


def test_customer_text_cannot_ping_channels_or_users_or_smuggle_links():
    hostile = "<!channel> hi <@U0LEAD> see <https://evil.example|your bank> & more"
    escaped = escape(hostile)
    assert "<" not in escaped and ">" not in escaped
    assert escaped.startswith("&lt;!channel&gt;")
    event = TicketAssigned(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        ticket_id="SB-1001",
        team="support",
        agent_id="ana",
        agent_name="Ana",
        slack_user_id="U0ANA",
        subject=hostile,
        contact=ContactSummary(contact_id="c_1", name="<!here>", email="a@example.com"),
    )
    text = assignment_text(event, first_message=hostile)
    assert "SB-1001" in text and "<@U0ANA>" in text
    assert "<!channel>" not in text and "<!here>" not in text and "<@U0LEAD>" not in text
    assert "\n>&lt;!channel&gt; hi" in text, "the opening message is quoted in the announcement"


def test_logs_redact_emails_phones_and_tokens_but_keep_addresses_and_dates():
    assert redact("from ana@example.com") == "from ***@example.com"
    assert redact("call +34 600 123 456") == "call [phone]"
    assert redact("token xoxb-1234-abcd") == "token [secret]"
    assert (
        redact("listening on 127.0.0.1:8080 at 2026-11-24 10:00") == "listening on 127.0.0.1:8080 at 2026-11-24 10:00"
    )


def test_logs_redact_every_address_in_runs_of_address_characters():
    # The pattern starts a match only where such a run starts (linear time), except right after an address.
    assert redact("ana@example.com+bob@example.org") == "***@example.com***@example.org"
    assert redact(f"{'x' * 100}@example.com, {'a.' * 40}b@example.com") == "***@example.com, ***@example.com"
    assert redact("a" * 10_000) == "a" * 10_000


def test_json_log_lines_carry_extras_redacted():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "mail from %s", ("ana@example.com",), None)
    record.ticket_id = "SB-1001"
    record.contact = "bob@example.org"
    line = json.loads(JsonFormatter("router").format(record))
    assert line["message"] == "mail from ***@example.com"
    assert line["ticket_id"] == "SB-1001" and line["contact"] == "***@example.org"
    assert line["service"] == "router" and line["level"] == "info"


def test_configured_secrets_and_bot_tokens_in_urls_never_reach_the_log():
    settings = Settings(
        telegram_bot_token="123456789:AAH-telegram-token-long-enough-to-match",
        slack_signing_secret="signing-secret-value",
        imap_password="hunter2-imap",
    )
    formatter = JsonFormatter("notifier", settings.secret_values())
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1,
        "POST https://api.telegram.org/bot123456789:AAH-telegram-token-long-enough-to-match/sendMessage",
        (), None,
    )  # fmt: skip
    record.detail = "login with hunter2-imap, verify with signing-secret-value"
    line = formatter.format(record)
    for secret in ("AAH-telegram-token", "hunter2-imap", "signing-secret-value"):
        assert secret not in line
    assert "/bot[secret]/sendMessage" in line
