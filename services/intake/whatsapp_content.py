"""What a WhatsApp Cloud API webhook says to a help desk, in pure code: its signature, the verify
challenge, customers' messages and the statuses of the messages we sent.

Shapes: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples and
/webhooks/components. A webhook is `{"object": "whatsapp_business_account", "entry": [{"changes":
[{"field": "messages", "value": {"metadata", "contacts", "messages", "statuses"}}]}]}`; only changes for our
business phone number are read. Text, media (image, audio, video, document, sticker: fetched by intake
through the media endpoint), location, contacts, interactive replies (button_reply, list_reply) and
template buttons are carried as the ticket's text and files; any other type (reactions, orders, types
WhatsApp adds later, "unsupported") is carried as a bracketed line, never dropped.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

from shared.events import DeliveryStatus, Sender
from shared.identities import e164
from shared.whatsapp_graph import Tracking

SIGNATURE_HEADER = "X-Hub-Signature-256"
_SIGNATURE_PREFIX = "sha256="
# Media types WhatsApp sends as `{"id", "mime_type", ...}`, how a placeholder names them, and the content
# type to assume when WhatsApp gives none.
MEDIA_TYPES: Mapping[str, tuple[str, str]] = {
    "image": ("image", "image/jpeg"),
    "audio": ("audio", "audio/ogg"),
    "video": ("video", "video/mp4"),
    "document": ("document", "application/octet-stream"),
    "sticker": ("sticker", "image/webp"),
}
_STATUSES = frozenset(get_args(DeliveryStatus))


def valid_signature(body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether `header` is "sha256=" and the hex HMAC-SHA256 of the raw `body` keyed with the app secret,
    compared in constant time (https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads)."""
    if not header or not header.startswith(_SIGNATURE_PREFIX):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header[len(_SIGNATURE_PREFIX) :].strip().lower().encode())


def challenge_answer(params: Mapping[str, str], verify_token: str) -> str | None:
    """The `hub.challenge` to echo when the verification request is a subscription with our verify token,
    else None (answered 403). https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests"""
    token = params.get("hub.verify_token", "")
    if params.get("hub.mode") != "subscribe" or not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    challenge = params.get("hub.challenge")
    return challenge if challenge else None


@dataclass(frozen=True)
class MediaFile:
    media_id: str
    # As a placeholder names it: "image", "voice message", "document" ...
    label: str
    content_type: str
    filename: str | None = None


@dataclass(frozen=True)
class CustomerMessage:
    """A customer's message: it belongs on their phone number's open ticket."""

    # WhatsApp's message ID (wamid): the same message redelivered has the same one.
    wamid: str
    # The customer's WhatsApp ID: their phone number, digits only, as the messages endpoint takes it.
    wa_id: str
    sender: Sender
    text: str
    files: tuple[MediaFile, ...]
    sent_at: datetime
    # The message it answers (WhatsApp's `context`), ours or theirs.
    reply_to: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """What became of a message we sent: for its ticket, when we sent it (`tracking` names the ticket)."""

    wamid: str
    status: DeliveryStatus
    at: datetime
    tracking: Tracking | None
    error: str | None = None


@dataclass
class Webhook:
    messages: list[CustomerMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    # Why parts were left out (another phone number, another field, a malformed entry), for the log.
    ignored: list[str] = field(default_factory=list)


def read_webhook(payload: object, phone_number_id: str) -> Webhook:
    """The customer messages and statuses of a webhook for our phone number. Pure, and never raises."""
    read = Webhook()
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        read.ignored.append("not a WhatsApp Business Account webhook")
        return read
    for entry in _objects(payload.get("entry")):
        for change in _objects(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                read.ignored.append(f"a {change.get('field')!r} change")
                continue
            metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
            if str(metadata.get("phone_number_id")) != phone_number_id:
                read.ignored.append(f"a change for phone number ID {metadata.get('phone_number_id')!r}")
                continue
            names = {
                str(contact.get("wa_id")): _text(contact.get("profile"), "name")
                for contact in _objects(value.get("contacts"))
            }
            for message in _objects(value.get("messages")):
                if isinstance(read_message := customer_message(message, names), CustomerMessage):
                    read.messages.append(read_message)
                else:
                    read.ignored.append(read_message)
            for status in _objects(value.get("statuses")):
                if isinstance(update := status_update(status), StatusUpdate):
                    read.statuses.append(update)
                else:
                    read.ignored.append(update)
    return read


def customer_message(message: Mapping[str, Any], names: Mapping[str, str | None]) -> CustomerMessage | str:
    """One entry of `messages`, or why it is none (a string)."""
    wamid, wa_id, kind = (_text(message, key) for key in ("id", "from", "type"))
    sent_at = _time(message.get("timestamp"))
    phone = e164(f"+{wa_id}") if wa_id and wa_id.isdigit() else None
    if not wamid or phone is None or sent_at is None or wa_id is None:
        return f"a message without id, sender number or timestamp: {str(message)[:200]}"
    parts, files = _content(kind or "unknown", message)
    if message.get("forwarded") or message.get("frequently_forwarded"):
        parts.insert(0, "[forwarded message]")
    if not parts:
        parts = [" ".join(f"[{file.label}: {file.filename}]" if file.filename else f"[{file.label}]" for file in files)]
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    return CustomerMessage(
        wamid=wamid,
        wa_id=wa_id,
        sender=Sender(name=names.get(wa_id) or None, phone=phone),
        text="\n".join(parts),
        files=tuple(files),
        sent_at=sent_at,
        reply_to=_text(context, "id"),
    )


def _content(kind: str, message: Mapping[str, Any]) -> tuple[list[str], list[MediaFile]]:
    """The message's text lines and media files, by its type."""
    body = message.get(kind) if isinstance(message.get(kind), dict) else {}
    if kind == "text":
        return [_text(body, "body") or "[empty message]"], []
    if kind in MEDIA_TYPES:
        label, default_type = MEDIA_TYPES[kind]
        if kind == "audio" and body.get("voice"):
            label = "voice message"
        media_id = _text(body, "id")
        caption = _text(body, "caption")
        if media_id is None:
            return [f"[{label} without a media ID]", *([caption] if caption else [])], []
        filename = _text(body, "filename")
        return ([caption] if caption else []), [
            MediaFile(media_id, label, _text(body, "mime_type") or default_type, filename)
        ]
    if kind == "location":
        place = ", ".join(part for part in (_text(body, "name"), _text(body, "address")) if part)
        where = f"{body.get('latitude')}, {body.get('longitude')}"
        return [f"[location: {place + ' ' if place else ''}({where})]"], []
    if kind == "contacts":
        shared = message.get("contacts")
        return [_contact_text(contact) for contact in _objects(shared)] or ["[contacts: none]"], []
    if kind == "interactive":
        reply_type = _text(body, "type") or "reply"
        reply = body.get(reply_type) if isinstance(body.get(reply_type), dict) else {}
        title, description = _text(reply, "title"), _text(reply, "description")
        chosen = f"{title} — {description}" if title and description else title or _text(reply, "id") or "?"
        what = {"button_reply": "button", "list_reply": "list choice"}.get(reply_type, reply_type)
        return [f"[{what}: {chosen}]"], []
    if kind == "button":
        return [f"[button: {_text(body, 'text') or _text(body, 'payload') or '?'}]"], []
    if kind == "reaction":
        emoji = _text(body, "emoji")
        return [f"[reaction {emoji} to a message]" if emoji else "[reaction removed]"], []
    errors = "; ".join(filter(None, (_text(error, "title") for error in _objects(message.get("errors")))))
    return [f"[{kind} message{f': {errors}' if errors else ''}]"], []


def _contact_text(contact: Mapping[str, Any]) -> str:
    name = _text(contact.get("name"), "formatted_name") or "no name"
    reach = [_text(phone, "phone") for phone in _objects(contact.get("phones"))]
    reach += [_text(email, "email") for email in _objects(contact.get("emails"))]
    listed = ", ".join(filter(None, reach))
    return f"[contact: {name}{f', {listed}' if listed else ''}]"


def status_update(status: Mapping[str, Any]) -> StatusUpdate | str:
    """One entry of `statuses`, or why it is none (a string)."""
    wamid, kind, at = _text(status, "id"), _text(status, "status"), _time(status.get("timestamp"))
    if not wamid or kind not in _STATUSES or at is None:
        return f"a status this desk does not record: {str(status)[:200]}"
    errors = [
        " ".join(filter(None, (str(error.get("code", "")), _text(error, "title"))))
        for error in _objects(status.get("errors"))
    ]
    return StatusUpdate(
        wamid=wamid,
        status=kind,  # type: ignore[arg-type]  # checked against DeliveryStatus above
        at=at,
        tracking=Tracking.decode(status.get("biz_opaque_callback_data")),
        error="; ".join(errors)[:1000] or None,
    )


def _objects(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(container: object, key: str) -> str | None:
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, str) and value else None


def _time(value: object) -> datetime | None:
    """A webhook timestamp (Unix seconds, as a string)."""
    if isinstance(value, str) and value.isdigit() or isinstance(value, int):
        try:
            return datetime.fromtimestamp(int(value), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None
