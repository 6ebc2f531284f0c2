"""The web form: what a submission must contain, and how it becomes an `InboundMessage`."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from services.intake.spam import Suspect
from services.intake.ticket_ids import Resolution
from shared.events import (
    QUARANTINE_EXCERPT_CHARS,
    QUARANTINE_FIELD_CHARS,
    Attachment,
    InboundMessage,
    MessageQuarantined,
    ReplyRoute,
    Sender,
    valid_traceparent,
)

MAX_MESSAGE_CHARS = 20_000


class FormSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    subject: str = Field(min_length=1, max_length=998)
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    phone: str | None = Field(default=None, max_length=40, pattern=r"^\+?[\d ().-]{5,}$")

    @field_validator("phone", mode="before")
    @classmethod
    def _blank_phone_is_none(cls, value: object) -> object:
        return None if value == "" else value


def form_channel_key(form_id: str, idempotency_key: str | None) -> str:
    """The same Idempotency-Key always names the same message, so a retried post adds nothing."""
    return f"form:{form_id}:{idempotency_key if idempotency_key is not None else uuid.uuid4()}"


def to_inbound(
    form_id: str,
    submission: FormSubmission,
    *,
    resolution: Resolution,
    channel_message_id: str,
    received_at: datetime,
    traceparent: str | None = None,
) -> InboundMessage:
    return InboundMessage.received(
        **resolution.fields(),
        traceparent=valid_traceparent(traceparent),
        channel="form",
        channel_message_id=channel_message_id,
        source=form_id,
        sender=Sender(name=submission.name, email=submission.email, phone=submission.phone),
        subject=submission.subject,
        text=submission.message,
        # Web-form customers are answered by email.
        reply_route=ReplyRoute(channel="email", address=submission.email, subject=submission.subject),
        received_at=received_at,
    )


def _clip(value: str, limit: int = QUARANTINE_FIELD_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def quarantined_form(inbound: InboundMessage, suspect: Suspect, original: Attachment) -> MessageQuarantined:
    """The quarantine event of a form post judged spam: `original` is the whole would-be `InboundMessage`
    (JSON), published as it is on release; its reserved ticket ID is the one the sender was answered with."""
    return MessageQuarantined(
        event_id=inbound.message_id,
        occurred_at=inbound.received_at,
        message_id=inbound.message_id,
        channel="form",
        channel_message_id=_clip(inbound.channel_message_id),
        kind="spam",
        reason_code=suspect.reason_code,
        reason=_clip(suspect.reason),
        source=_clip(inbound.source),
        sender=Sender(
            name=_clip(inbound.sender.name) if inbound.sender.name else None,
            email=inbound.sender.email,
            phone=inbound.sender.phone,
        ),
        subject=_clip(inbound.subject) if inbound.subject else None,
        excerpt=_clip(inbound.text, QUARANTINE_EXCERPT_CHARS),
        original=original,
        received_at=inbound.received_at,
        correlation_id=inbound.correlation_id,
        traceparent=inbound.traceparent,
        ticket_id=inbound.ticket_id,
    )
