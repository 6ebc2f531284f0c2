"""The web form: what a submission must contain, and how it becomes an `InboundMessage`."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from services.intake.spam import Suspect
from services.intake.ticket_ids import Resolution
from shared import i18n
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

    # The language the customer picked on the page (a catalogue's locale, shared/i18n.py) and their browser's
    # IANA time zone; both optional.
    language: str | None = Field(default=None, max_length=64)
    timezone: str | None = Field(default=None, max_length=64)

    @field_validator("phone", mode="before")
    @classmethod
    def _blank_phone_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("language")
    @classmethod
    def _offered_language(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if (locale := i18n.negotiate(value)) is None:
            raise ValueError(f"no catalogue for {value!r}")
        return locale

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        # A zone this server does not know (an older tz database) only costs the customer local times.
        return value if i18n.zone(value) else None


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
    accept_language: str | None = None,
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
        customer_language=submission.language,
        customer_timezone=submission.timezone,
        language_hint=i18n.hint(accept_language),
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
