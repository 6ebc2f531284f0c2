"""Fitting an inbound message into one Kafka record, whatever its size.

A record over the broker's `message.max.bytes` (Kafka's default: 1 MiB + 12 bytes) or the producer's
`max_request_size` (aiokafka's default: 1 MiB) is refused on every attempt: the channel would be
told "try again" forever (Telegram redelivers such an update endlessly). The ticket events the router
makes of a message repeat its text, fields and attachment list, so an inbound record is kept to a
quarter of that limit. Sizes are measured on the serialised event, never estimated.

Nothing is refused for being large: what does not fit moves into attachments (the customer's own
words, so outside the attachment policy), and the event keeps an excerpt and a note saying so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from shared.attachments import AttachmentStore
from shared.events import Attachment, InboundMessage, ReplyRoute, Sender

MAX_RECORD_BYTES = 256 * 1024
# What the event keeps of a text that had to be cut: as much as a form message may hold.
EXCERPT_CHARS = 20_000
# Header-like fields (subject, names, file names) beyond RFC 5322's line limit are cut.
FIELD_CHARS = 998
# Attachments beyond this many are listed in attachments.json instead of the event.
LISTED = 100


class RecordTooLarge(ValueError):
    """Even the smallest form of the message exceeds the limit (only a limit of a few KiB can cause it)."""


def record_size(event: BaseModel) -> int:
    """Bytes of the event as a record value: the JSON the broker's serializer writes."""
    return len(type(event).__pydantic_serializer__.to_json(event))


def fit_to_record(message: InboundMessage, store: AttachmentStore, limit: int = MAX_RECORD_BYTES) -> InboundMessage:
    """The message unchanged when its record is at most `limit` bytes, else a version that fits.

    Tried in turn, each step stronger, until one fits: the HTML goes whole to `message.html`; a text
    longer than the excerpt goes whole to `message.txt` and the event keeps its first characters;
    header-like fields are cut to 998 characters and identifiers longer than that are replaced by
    their SHA-256; attachments beyond the first ones are listed in `attachments.json`, References
    keep their first and last IDs. A note at the end of the text tells the agent what was moved.
    The text always starts with a prefix of the original text.

    Raises RecordTooLarge when even the last step does not fit.
    """
    if record_size(message) <= limit:
        return message
    kept = _Kept(message, store)
    for excerpt_chars, listed in ((min(EXCERPT_CHARS, limit // 12), LISTED), (limit // 120, 10), (0, 0)):
        fitted = _squeezed(message, kept, excerpt_chars, listed)
        if record_size(fitted) <= limit:
            return fitted
    raise RecordTooLarge(f"message {message.message_id} does not fit {limit} bytes even without its text")


@dataclass
class _Kept:
    """What moved out of the event, stored once however many steps are tried."""

    message: InboundMessage
    store: AttachmentStore
    _manifests: dict[int, Attachment] = field(default_factory=dict)

    def _save(self, content: bytes, filename: str, content_type: str) -> Attachment:
        return self.store.save(content, filename=filename, content_type=content_type, enforce_policy=False)

    @cached_property
    def text(self) -> Attachment:
        return self._save(self.message.text.encode(), "message.txt", "text/plain; charset=utf-8")

    @cached_property
    def html(self) -> Attachment:
        assert self.message.html is not None
        return self._save(self.message.html.encode(), "message.html", "text/html; charset=utf-8")

    def manifest(self, listed: int) -> Attachment:
        """The attachments after the first `listed`, as JSON references to the stored files."""
        if listed not in self._manifests:
            rest = [attachment.model_dump(mode="json") for attachment in self.message.attachments[listed:]]
            content = json.dumps(rest, ensure_ascii=False, indent=1).encode()
            self._manifests[listed] = self._save(content, "attachments.json", "application/json")
        return self._manifests[listed]


def _squeezed(message: InboundMessage, kept: _Kept, excerpt_chars: int, listed: int) -> InboundMessage:
    moved: list[Attachment] = []
    notes: list[str] = []
    text = message.text
    if len(text) > excerpt_chars:
        text = text[:excerpt_chars]
        moved.append(kept.text)
        notes.append(
            f"[message cut after {excerpt_chars:,} of {len(message.text):,} characters: "
            "the full text is attached as message.txt]"
        )
    if message.html is not None:
        moved.append(kept.html)
        notes.append("[the HTML version is attached as message.html]")
    attachments = message.attachments
    if len(attachments) > listed:
        moved.append(kept.manifest(listed))
        notes.append(f"[{len(attachments) - listed} more attachments are listed in attachments.json]")
        attachments = attachments[:listed]
    if notes:
        text = "\n\n".join(part for part in (text, "\n".join(notes)) if part)
    route = message.reply_route
    return message.model_copy(
        update={
            "text": text,
            "html": None,
            "attachments": [*moved, *(_attachment(attachment) for attachment in attachments)],
            "original": _attachment(message.original) if message.original else None,
            "channel_message_id": _identifier(message.channel_message_id),
            "edit_of": _identifier(message.edit_of) if message.edit_of else None,
            "source": _clip(message.source),
            "subject": _clip(message.subject) if message.subject else None,
            "sender": _sender(message.sender),
            "reply_route": _route(route, listed) if route else None,
            "bounced_recipients": [_identifier(address) for address in message.bounced_recipients[:listed]],
        }
    )


def _clip(value: str) -> str:
    return value if len(value) <= FIELD_CHARS else value[: FIELD_CHARS - 1] + "…"


def _identifier(value: str) -> str:
    """Identifiers are compared, not read: a shortened one must still tell messages apart."""
    return value if len(value) <= FIELD_CHARS else f"sha256:{hashlib.sha256(value.encode()).hexdigest()}"


def _attachment(attachment: Attachment) -> Attachment:
    return attachment.model_copy(
        update={
            "filename": _clip(attachment.filename) if attachment.filename else None,
            "content_type": _clip(attachment.content_type),
            "content_id": _identifier(attachment.content_id) if attachment.content_id else None,
        }
    )


def _sender(sender: Sender) -> Sender:
    clipped: dict[str, Any] = {
        name: _clip(value)
        for name in ("name", "phone", "telegram_username", "slack_user_id")
        if isinstance(value := getattr(sender, name), str)
    }
    return sender.model_copy(update=clipped)


def _route(route: ReplyRoute, listed: int) -> ReplyRoute:
    references = route.references
    if len(references) > listed:
        # Threading needs the thread's first and latest Message-IDs most (Netnews trims so: RFC 5537 §3.4.4).
        references = references[:1] + references[len(references) - listed + 1 :] if listed else []
    return route.model_copy(
        update={
            "address": _identifier(route.address),
            "reply_to_id": _identifier(route.reply_to_id) if route.reply_to_id else None,
            "references": [_identifier(reference) for reference in references],
            "subject": _clip(route.subject) if route.subject else None,
        }
    )
