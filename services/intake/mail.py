"""Email intake shared by intake-smtp and intake-imap: parse, defend against loops, thread, publish.

Threading follows In-Reply-To/References against every Message-ID Switchboard received or sent,
then the `[SB-123]` tag in the subject, then nothing (a new ticket). Machine mail (auto-replies,
bounces, complaints) never opens a ticket: it is recorded on the ticket it answers; answering none,
it is kept in quarantine (the .eml and an event with the reason), as is our own mail coming back.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from pydantic import EmailStr, TypeAdapter, ValidationError

from services.intake.core import Intake, with_refusals
from services.intake.email.mime import MailAttachment, ParsedMail
from services.intake.email.reading import MailReading
from services.intake.mail_readers import MailReaders
from shared.attachments import AttachmentRejected
from shared.conversations import conversation_ticket
from shared.events import (
    QUARANTINE_EXCERPT_CHARS,
    QUARANTINE_FIELD_CHARS,
    Attachment,
    InboundMessage,
    MessageKind,
    MessageQuarantined,
    QuarantineKind,
    ReplyRoute,
    Sender,
)
from shared.ids import is_our_message_id
from shared.read_model import ReadModel
from shared.settings import Settings

logger = logging.getLogger(__name__)

_email_adapter: TypeAdapter[str] = TypeAdapter(EmailStr)
_KIND_OF_CLASS: dict[str, MessageKind] = {
    "normal": "message",
    "auto_reply": "auto_reply",
    "bounce": "bounce",
    "complaint": "complaint",
}


def support_addresses(settings: Settings, configured: list[str]) -> set[str]:
    """The config's support addresses plus SWITCHBOARD_SUPPORT_ADDRESSES, lower-cased."""
    extra = [address.strip() for address in settings.support_addresses.split(",") if address.strip()]
    return {address.lower() for address in [*configured, *extra]}


def own_addresses(settings: Settings, support: set[str]) -> set[str]:
    """Every address we send from: mail from them is our own coming back."""
    return support | ({settings.mail_from.lower()} if settings.mail_from else set())


@dataclass(frozen=True)
class MailOutcome:
    status: Literal["published", "quarantined"]
    reason: str
    ticket_id: str | None = None


def quarantined_mail(
    mail: ParsedMail,
    *,
    message_id: UUID,
    channel_message_id: str,
    kind: QuarantineKind,
    reason_code: str,
    reason: str,
    source: str,
    original: Attachment,
    now: datetime,
) -> MessageQuarantined:
    """The quarantine event of a mail: header-like fields and the text excerpt cut to the event's bounds."""

    def clip(value: str, limit: int = QUARANTINE_FIELD_CHARS) -> str:
        return value if len(value) <= limit else value[: limit - 1] + "…"

    return MessageQuarantined(
        event_id=message_id,
        occurred_at=now,
        message_id=message_id,
        channel="email",
        channel_message_id=clip(channel_message_id),
        kind=kind,
        reason_code=reason_code,
        reason=clip(reason),
        source=clip(source),
        sender=Sender(
            name=clip(mail.sender.name) if mail.sender and mail.sender.name else None,
            email=_valid_email(mail.sender.address if mail.sender else None),
        ),
        subject=clip(mail.subject) if mail.subject else None,
        excerpt=clip(mail.text, QUARANTINE_EXCERPT_CHARS),
        original=original,
        received_at=mail.date or now,
        correlation_id=str(message_id),
    )


def _valid_email(address: str | None) -> str | None:
    if not address:
        return None
    try:
        return _email_adapter.validate_python(address.strip())
    except ValidationError:
        return None


class MailIntake:
    def __init__(self, intake: Intake, own_addresses: set[str], readers: MailReaders):
        self.intake = intake
        self.readers = readers
        self.own_addresses = {address.lower() for address in own_addresses}
        self.own_domains = {address.rsplit("@", 1)[-1] for address in self.own_addresses}
        self.read_model = ReadModel(intake.redis)
        self.ticket_tag = re.compile(rf"\[({re.escape(intake.config.ticket_prefix)}-\d+)\]")

    async def accept(self, raw: bytes, *, source: str) -> MailOutcome:
        """Publishes the mail or keeps it in quarantine, and returns once Kafka has it.

        Raises MailUnreadable when the bytes are not mail at all, MailNotRead when reading them ran
        past the bound (`MailReaders`); Kafka/Redis errors propagate so the channel can answer "try
        again" (SMTP 451, IMAP: left unseen).
        """
        reading = await self.readers.read(raw)
        mail, classification = reading.mail, reading.classification
        sender = mail.sender.address.lower() if mail.sender else ""
        message_key = mail.message_id or hashlib.sha256(raw).hexdigest()
        channel_key = f"email:{message_key}"
        if sender in self.own_addresses:
            loop = "mail from our own address"
        elif mail.message_id and is_our_message_id(mail.message_id, self.own_domains):
            loop = "our own message came back"
        else:
            loop = None
        if loop:
            return await self._quarantine(mail, raw, message_key, source, "loop", "own_mail_loop", loop)
        kind = _KIND_OF_CLASS[classification.mail_class]

        known = await self.intake.ticket_ids.remembered(channel_key)
        thread = None if known else await self._thread(reading)
        if known is None and thread is None and kind in ("auto_reply", "complaint", "bounce"):
            reason = f"{kind.replace('_', '-')} answering no known ticket ({classification.reason})"
            outcome = await self._quarantine(mail, raw, message_key, source, kind, "machine_mail_no_ticket", reason)
            # A bounce still goes on to the router, which marks its recipients undeliverable.
            if kind != "bounce" or not classification.bounced_recipients:
                return outcome
        resolution = await self.intake.resolve_ticket(
            channel_key, found=thread, remember=[f"email:{message_key}"], follows_up=kind == "message"
        )

        attachments, refused = self._store_attachments(mail.attachments)
        original = self.intake.attachments.save(
            raw, filename="original.eml", content_type="message/rfc822", enforce_policy=False
        )
        text = with_refusals(mail.new_text if kind == "message" else mail.text, refused)
        sender_email = _valid_email(mail.sender.address if mail.sender else None)
        reply_to = _valid_email(mail.reply_to[0].address) if mail.reply_to else None
        now = datetime.now(UTC)
        await self.intake.publish(
            InboundMessage.received(
                **resolution.fields(),
                occurred_at=now,
                channel="email",
                kind=kind,
                channel_message_id=message_key,
                source=source,
                sender=Sender(name=mail.sender.name if mail.sender else None, email=sender_email),
                subject=mail.subject,
                text=text,
                html=mail.html,
                attachments=attachments,
                original=original,
                reply_route=ReplyRoute(
                    channel="email",
                    address=reply_to or sender_email,
                    reply_to_id=mail.message_id,
                    references=mail.references,
                    subject=mail.subject,
                )
                if kind == "message" and (reply_to or sender_email)
                else None,
                bounced_recipients=classification.bounced_recipients,
                acknowledge=classification.acknowledge,
                received_at=mail.date or now,
                # For the router's rules (`to_address`, the language): bounded, a mail may name thousands.
                to_addresses=[address.address.lower() for address in [*mail.to, *mail.cc][:50]],
                language_hint=(mail.headers.get("content-language") or "")[:64] or None,
            )
        )
        return MailOutcome("published", classification.reason, resolution.ticket_id)

    async def _quarantine(
        self,
        mail: ParsedMail,
        raw: bytes,
        message_key: str,
        source: str,
        kind: QuarantineKind,
        reason_code: str,
        reason: str,
    ) -> MailOutcome:
        original = self.intake.attachments.save(
            raw, filename="original.eml", content_type="message/rfc822", enforce_policy=False
        )
        event = quarantined_mail(
            mail,
            message_id=self.intake.message_id(f"email:{message_key}"),
            channel_message_id=message_key,
            kind=kind,
            reason_code=reason_code,
            reason=reason,
            source=source,
            original=original,
            now=datetime.now(UTC),
        )
        await self.intake.quarantine(event)
        return MailOutcome("quarantined", reason)

    async def _thread(self, reading: MailReading) -> str | None:
        mail = reading.mail
        replied_to = [*mail.in_reply_to, *reversed(mail.references), *reading.returned_message_ids]
        if ticket_id := await conversation_ticket(self.intake.redis, [f"email:{mid}" for mid in replied_to]):
            return ticket_id
        tag = self.ticket_tag.search(mail.subject or "")
        if tag and await self.read_model.ticket_exists(tag.group(1)):
            return tag.group(1)
        return None

    def _store_attachments(self, parts: list[MailAttachment]) -> tuple[list[Attachment], list[str]]:
        stored, refused = [], []
        for part in parts:
            try:
                stored.append(
                    self.intake.attachments.save(
                        part.content,
                        filename=part.filename,
                        content_type=part.content_type,
                        inline=part.inline,
                        content_id=part.content_id,
                    )
                )
            except AttachmentRejected as rejection:
                refused.append(str(rejection))
        return stored, refused
