"""The quarantine event made of a mail: what an operator needs to judge it, within the event's bounds."""

from datetime import UTC, datetime
from uuid import uuid4

from services.intake.email.mime import parse_mail
from services.intake.mail import quarantined_mail
from shared.events import QUARANTINE_EXCERPT_CHARS, QUARANTINE_FIELD_CHARS, Attachment, MessageQuarantined

ORIGINAL = Attachment(sha256="0" * 64, filename="original.eml", content_type="message/rfc822", size=10)
NOW = datetime(2026, 11, 24, 9, 31, tzinfo=UTC)


def auto_reply(subject: str, body: str, sender: str = "Carol Diaz <carol@customer.example>") -> bytes:
    return (
        f"From: {sender}\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
        "Message-ID: <ooo-1@customer.example>\r\nDate: Tue, 24 Nov 2026 10:30:00 +0100\r\n"
        f"Auto-Submitted: auto-replied\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def test_a_quarantined_mail_names_its_sender_reason_and_original():
    message_id = uuid4()
    event = quarantined_mail(
        parse_mail(auto_reply("Out of office", "Back on Monday.")),
        message_id=message_id,
        channel_message_id="ooo-1@customer.example",
        kind="auto_reply",
        reason_code="machine_mail_no_ticket",
        reason="auto-reply answering no known ticket",
        source="smtp",
        original=ORIGINAL,
        now=NOW,
    )
    assert event.type == "message.quarantined" and event.event_id == event.message_id == message_id
    assert (event.sender.name, event.sender.email) == ("Carol Diaz", "carol@customer.example")
    assert (event.subject, event.excerpt.strip()) == ("Out of office", "Back on Monday.")
    assert event.received_at == datetime(2026, 11, 24, 9, 30, tzinfo=UTC) and event.occurred_at == NOW
    assert event.original == ORIGINAL and event.correlation_id == str(message_id)


def test_long_fields_are_cut_to_the_events_bounds_and_a_bad_address_is_left_out():
    raw = auto_reply("S" * 5000, "x" * 100_000, sender=f"{'N' * 3000} <not an address>")
    event = quarantined_mail(
        parse_mail(raw),
        message_id=uuid4(),
        channel_message_id="m" * 5000,
        kind="loop",
        reason_code="own_mail_loop",
        reason="mail from our own address",
        source="smtp",
        original=ORIGINAL,
        now=NOW,
    )
    assert len(event.subject) == len(event.channel_message_id) == QUARANTINE_FIELD_CHARS
    assert len(event.excerpt) == QUARANTINE_EXCERPT_CHARS and event.excerpt.startswith("xxx")
    assert event.sender.email is None
    # Validating the event again proves the bounds hold as the schema states them.
    assert MessageQuarantined.model_validate_json(event.model_dump_json()) == event
