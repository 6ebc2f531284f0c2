import uuid
from datetime import UTC, datetime

from services.router.classification import classify
from services.router.tickets import new_ticket
from shared.config import load_config
from shared.events import ContactSummary, InboundMessage, Sender, TicketAssigned, TicketCreated
from shared.ids import format_ticket_id, is_ticket_id
from shared.settings import EXAMPLE_CONFIG

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def inbound(source: str = "contact", message_id: uuid.UUID | None = None) -> InboundMessage:
    message_id = message_id or uuid.uuid4()
    return InboundMessage(
        event_id=message_id,
        occurred_at=NOW,
        ticket_id="SB-1001",
        message_id=message_id,
        channel="form",
        channel_message_id=str(message_id),
        source=source,
        sender=Sender(name="Ana", email="ana@example.com"),
        subject="Cannot log in",
        text="help",
        received_at=NOW,
    )


def test_ticket_ids_are_human_friendly():
    assert format_ticket_id("SB", 42) == "SB-1042"
    assert is_ticket_id("SB-1042")
    assert not is_ticket_id("sb-1") and not is_ticket_id("TOOLONG-1")


def test_classification_uses_the_forms_team_else_the_default():
    config = load_config(EXAMPLE_CONFIG)
    assert classify(inbound("contact"), config).team == "support"
    # No rule fires: the default, with what detection read (an English message, no flags).
    assert classify(inbound("unlisted"), config) == config.default_classification.model_copy(
        update={"language": "en", "customer_language": "en", "customer_language_from": "detection"}
    )


def test_new_ticket_events_are_deterministic_for_a_redelivered_message():
    config = load_config(EXAMPLE_CONFIG)
    message = inbound()
    contact = ContactSummary(contact_id="c_1", name="Ana", email="ana@example.com")
    agent = config.agent("ben")
    first = new_ticket(message, contact, config.default_classification, agent, NOW)
    again = new_ticket(message, contact, config.default_classification, agent, NOW)
    assert [event.type for event in first] == ["ticket.created", "ticket.message_added", "ticket.assigned"]
    assert [event.event_id for event in first] == [event.event_id for event in again]
    assert len({event.event_id for event in first}) == 3
    created, _, assigned = first
    assert isinstance(created, TicketCreated) and created.contact == contact
    assert isinstance(assigned, TicketAssigned) and assigned.slack_user_id == "U0BEN"
    assert all(event.correlation_id == str(message.message_id) for event in first)


def test_ticket_events_carry_the_messages_trace_context():
    config = load_config(EXAMPLE_CONFIG)
    traced = inbound().model_copy(update={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    contact = ContactSummary(contact_id="c_1")
    events = new_ticket(traced, contact, config.default_classification, config.agent("ana"), NOW)
    assert {event.traceparent for event in events} == {traced.traceparent}
