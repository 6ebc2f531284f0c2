"""What the bench sends, shaped like real traffic: web-form bodies, inbound messages, ticket events.

Each kind is built once through the shared event models (so a schema change breaks the bench
loudly) and then copied with fresh IDs per record, which keeps a million records cheap to make.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

from shared.config import DeskConfig
from shared.events import (
    ContactSummary,
    InboundMessage,
    MessageAdded,
    ReplyRoute,
    Sender,
    TicketAssigned,
    TicketCreated,
)

# A few subjects and texts, so classification and Slack text see some variety.
_CONVERSATIONS = (
    ("Cannot log in", "Since this morning the login page says my password is wrong, though I reset it twice."),
    ("Refund for order 4471", "I was charged twice for the same order. Could you refund one of the payments?"),
    ("Invoice address", "Please change the billing address on my invoices to our new office in Hamburg."),
    ("App crashes on start", "The mobile app closes right after the splash screen on my phone since the update."),
)


class Record(NamedTuple):
    """One Kafka record: key, value and headers as aiokafka takes them."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def bench_ticket_id(prefix: str, run_nonce: int, index: int) -> str:
    """A ticket ID no intake will ever mint (its sequence starts at 1001): the run's nonce, then the index."""
    return f"{prefix}-{run_nonce}{index:09d}"


class Workload:
    """Records and forms for one run; `run_nonce` (e.g. the start's Unix time) keeps runs apart."""

    def __init__(self, config: DeskConfig, run_nonce: int):
        self.config = config
        self.run_nonce = run_nonce
        self.form_id = config.forms[0].id if config.forms else "contact"
        self.team = config.team(
            (config.forms[0].team if config.forms and config.forms[0].team else None)
            or config.default_classification.team
        )
        self._assignees = [config.agent(member) for member in self.team.members]
        now = datetime.now(UTC)
        self._inbound = [_inbound_template(self.form_id, subject, text, now) for subject, text in _CONVERSATIONS]
        self._ticket_events = [self._ticket_templates(subject, text, now) for subject, text in _CONVERSATIONS]

    def ticket_id(self, index: int) -> str:
        return bench_ticket_id(self.config.ticket_prefix, self.run_nonce, index)

    def form_body(self, index: int) -> bytes:
        """The JSON a customer's browser posts to /v1/forms/{form_id}."""
        subject, text = _CONVERSATIONS[index % len(_CONVERSATIONS)]
        return json.dumps(
            {"name": f"Customer {index}", "email": _email(index), "subject": subject, "message": text}
        ).encode()

    def inbound_record(self, index: int) -> Record:
        """A web-form message for a new ticket, as intake would publish it on the inbound topic."""
        body = _fresh(self._inbound[index % len(self._inbound)])
        message_id = str(uuid.uuid4())
        body.update(
            event_id=message_id,
            message_id=message_id,
            correlation_id=message_id,
            channel_message_id=message_id,
            ticket_id=self.ticket_id(index),
            occurred_at=(now := _now()),
            received_at=now,
        )
        body["sender"].update(name=f"Customer {index}", email=_email(index))
        body["reply_route"]["address"] = _email(index)
        return _record(body)

    def ticket_records(self, index: int) -> list[Record]:
        """What the router writes for a new ticket: created, the opening message, assigned."""
        ticket_id = self.ticket_id(index)
        correlation_id = str(uuid.uuid4())
        contact = {"contact_id": f"c_bench{self.run_nonce}{index}", "name": f"Customer {index}", "email": _email(index)}
        assignee = self._assignees[index % len(self._assignees)]
        records = []
        now = _now()
        for template in self._ticket_events[index % len(self._ticket_events)]:
            body = _fresh(template)
            body.update(event_id=str(uuid.uuid4()), ticket_id=ticket_id, correlation_id=correlation_id, occurred_at=now)
            if "contact" in body:
                body["contact"].update(contact, identities=[f"email:{_email(index)}"])
            if body["type"] == "ticket.message_added":
                body.update(message_id=correlation_id, contact_id=contact["contact_id"], received_at=now)
                body["sender"].update(name=contact["name"], email=contact["email"])
                body["reply_route"]["address"] = contact["email"]
            if body["type"] == "ticket.assigned":
                body.update(agent_id=assignee.id, agent_name=assignee.name, slack_user_id=assignee.slack_user_id)
            records.append(_record(body))
        return records

    def _ticket_templates(self, subject: str, text: str, now: datetime) -> list[dict[str, Any]]:
        envelope = {"event_id": uuid.uuid4(), "occurred_at": now, "ticket_id": self.ticket_id(0)}
        contact = ContactSummary(contact_id="c_bench", name="Customer", email="customer@example.com")
        route = ReplyRoute(channel="email", address="customer@example.com", subject=subject)
        classification = self.config.default_classification
        assignee = self._assignees[0]
        events = [
            TicketCreated(
                **envelope,
                channel="form",
                subject=subject,
                contact=contact,
                team=self.team.id,
                category=classification.category,
                priority=classification.priority,
                tags=classification.tags,
                reply_route=route,
            ),
            MessageAdded(
                **envelope,
                message_id=uuid.uuid4(),
                author="customer",
                channel="form",
                text=text,
                sender=Sender(name="Customer", email="customer@example.com"),
                reply_route=route,
                contact_id=contact.contact_id,
                received_at=now,
            ),
            TicketAssigned(
                **envelope,
                team=self.team.id,
                agent_id=assignee.id,
                agent_name=assignee.name,
                slack_user_id=assignee.slack_user_id,
                subject=subject,
                contact=contact,
            ),
        ]
        return [event.model_dump(mode="json") for event in events]

    def sample_payload(self) -> bytes:
        """A typical inbound record's value: the raw pass-through moves records of this size."""
        return self.inbound_record(0).value


def records_in_order(records_of, count: int):
    """Every record of indexes 0 … count-1, flattened (records_of(i) gives one record or a list)."""
    for index in range(count):
        made = records_of(index)
        yield from made if isinstance(made, list) else (made,)


def _inbound_template(form_id: str, subject: str, text: str, now: datetime) -> dict[str, Any]:
    message = InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id="SB-1001",
        received_at=now,
        channel="form",
        channel_message_id="template",
        source=form_id,
        sender=Sender(name="Customer", email="customer@example.com"),
        subject=subject,
        text=text,
        reply_route=ReplyRoute(channel="email", address="customer@example.com", subject=subject),
    )
    return message.model_dump(mode="json")


def _fresh(template: dict[str, Any]) -> dict[str, Any]:
    """A copy to fill in: nested objects are copied too (a deep copy would cost the most of a record)."""
    return {key: dict(value) if isinstance(value, dict) else value for key, value in template.items()}


def _record(body: dict[str, Any]) -> Record:
    headers = [("event-type", body["type"].encode()), ("event-id", body["event_id"].encode())]
    return Record(body["ticket_id"].encode(), json.dumps(body, separators=(",", ":")).encode(), headers)


def _email(index: int) -> str:
    return f"customer{index}@example.com"


def _now() -> str:
    return datetime.now(UTC).isoformat()
