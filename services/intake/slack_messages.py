"""What a Slack `message` event means for a ticket: the customer's post, its text, links and files. Pure.

Slack writes message text in its own markup (https://api.slack.com/reference/surfaces/formatting):
links hide their target behind a label (`<https://…|dashboard>`), mentions are IDs, and `&`, `<`, `>`
are escaped. The ticket gets plain text in which every link target stays visible
("dashboard (https://…)"). Whatever else a person put in the message is carried too: files (as
`SlackFile`s to fetch) and messages they shared from elsewhere; link previews that Slack made of a
link already in the text add nothing and are left out.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shared.config import DeskConfig

logger = logging.getLogger(__name__)

# Subtypes that carry what a person wrote; every other one (joins, topic changes, ...) is channel noise.
PERSON_MESSAGE_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
# Slack's special mentions (<!here>), shown as people write them.
_SPECIAL_MENTIONS = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}
_MARKUP = re.compile(r"<([^<>]*)>")


def plain_text(markup: str) -> str:
    """Slack message markup as plain text: "<https://x.example|the docs>" → "the docs (https://x.example)".

    User and channel mentions read "@name" / "#name" (their ID when Slack sends no name); dates
    their fallback text; `&amp;`, `&lt;` and `&gt;` become the characters they stand for.
    """
    return _unescape(_MARKUP.sub(lambda match: _token(match.group(1)), markup))


def _token(inner: str) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f"@{label or target[1:]}"
    if target.startswith("#"):
        return f"#{label or target[1:]}"
    if target.startswith("!"):
        command = target[1:].split("^", 1)[0]
        if label:
            # <!subteam^S0ID|@team>, <!date^1392734382^{date}|Feb 18, 2014>
            return label
        return _SPECIAL_MENTIONS.get(command, f"@{command}")
    if target.startswith("mailto:") and (not label or label == target.removeprefix("mailto:")):
        return target.removeprefix("mailto:")
    if not label or label in (target, target.split("://", 1)[-1]):
        return target
    return f"{label} ({target})"


def _unescape(text: str) -> str:
    # Slack escapes exactly these three; &amp; last, so that "&amp;lt;" stays the text "&lt;".
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# --- The event, as far as a help desk reads it ----------------------------------------------------
# Lenient like the Telegram models: only the fields used here are declared, each one optional where
# Slack may leave it out, and list items that are no objects are skipped rather than fatal.


def _objects_only(value: Any) -> Any:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else value


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SlackFile(_Lenient):
    """A file object of the Web API (https://api.slack.com/types/file), as far as intake uses it."""

    id: str
    name: str | None = None
    title: str | None = None
    mimetype: str | None = None
    size: int | None = None
    url_private: str | None = None
    url_private_download: str | None = None
    permalink: str | None = None
    # "hosted" (an upload), "external" (Google Drive ...), "tombstone" (deleted), "hidden_by_limit" ...
    mode: str | None = None
    # "check_file_info" in Slack Connect channels: the event leaves the details to files.info.
    file_access: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.title or self.id

    @property
    def content_type(self) -> str:
        return (self.mimetype or "application/octet-stream").lower()

    @property
    def link(self) -> str | None:
        """Where a person with access to Slack opens the file."""
        return self.permalink or self.url_private

    @property
    def needs_file_info(self) -> bool:
        return self.file_access == "check_file_info" or (
            self.url_private_download is None and self.url_private is None and self.mode not in _UNFETCHABLE_MODES
        )


# Files there is nothing to fetch of: deleted, or hidden from the app by the workspace's plan.
_UNFETCHABLE_MODES = frozenset({"tombstone", "hidden_by_limit"})

Objects = Annotated[list, BeforeValidator(_objects_only)]
# A message timestamp: Unix seconds (10 digits last until 2286) and a sequence number.
Ts = Annotated[str, Field(pattern=r"^\d{1,10}\.\d{1,9}$")]


class _MessageAttachment(_Lenient):
    """A secondary attachment: a link preview, or a message shared (forwarded) from elsewhere."""

    fallback: str | None = None
    text: str | None = None
    pretext: str | None = None
    title: str | None = None
    title_link: str | None = None
    from_url: str | None = None
    original_url: str | None = None
    author_name: str | None = None
    is_share: bool = False
    is_msg_unfurl: bool = False
    files: Annotated[list[SlackFile], BeforeValidator(_objects_only)] = []


class _Message(_Lenient):
    subtype: str | None = None
    user: str | None = None
    bot_id: str | None = None
    text: str = ""
    ts: Ts
    thread_ts: Ts | None = None
    files: Annotated[list[SlackFile], BeforeValidator(_objects_only)] = []
    attachments: Annotated[list[_MessageAttachment], BeforeValidator(_objects_only)] = []
    blocks: Objects = []


class MessageEvent(_Message):
    """A `message` event (https://api.slack.com/events/message), as far as intake reads it."""

    channel: str
    message: _Message | None = None
    previous_message: _Message | None = None


# --- What Switchboard makes of it ------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerPost:
    """What a customer wrote (or rewrote) in a support channel."""

    channel: str
    # The Slack ts of this event's message: the message itself, or the edit.
    ts: str
    # The ts of the thread's first message: the conversation the post belongs to.
    thread_ts: str
    user_id: str
    text: str
    # For edits: the channel message ID of the message rewritten.
    edit_of: str | None
    files: tuple[SlackFile, ...] = ()

    @property
    def channel_message_id(self) -> str:
        return f"{self.channel}:{self.ts}"

    @property
    def conversation(self) -> str:
        return f"slack:{self.channel}:{self.thread_ts}"


def customer_post(raw_event: object, config: DeskConfig) -> CustomerPost | None:
    """The customer post a `message` event carries; None, logged, for any other message. Never raises."""
    if not isinstance(raw_event, dict):
        return _ignored("the event is not an object", {}, malformed=True)
    channel = raw_event.get("channel")
    if not isinstance(channel, str) or channel not in config.slack_support_channels:
        return _ignored("not a support channel", raw_event)
    try:
        event = MessageEvent.model_validate(raw_event)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return _ignored(f"malformed message event: {where}: {first['msg']}", raw_event, malformed=True)
    if event.subtype == "message_deleted":
        # The ticket keeps what the customer first wrote: it is the audit trail.
        return _ignored("deleted in Slack; the ticket keeps the original", raw_event)
    if event.subtype == "message_changed":
        if event.message is None:
            return _ignored("a change without the changed message", raw_event, malformed=True)
        message, previous = event.message, event.previous_message
        if previous is not None and _content_key(previous) == _content_key(message):
            # Slack also reports link previews and thread replies as changes of the message.
            return _ignored("changed without new content", raw_event)
        edit_of: str | None = f"{event.channel}:{message.ts}"
    elif event.subtype in PERSON_MESSAGE_SUBTYPES:
        message, edit_of = event, None
    else:
        return _ignored("not a person's message", raw_event)
    if message.bot_id or message.subtype not in PERSON_MESSAGE_SUBTYPES:
        return _ignored("not written by a person", raw_event)
    user_id = message.user
    # Agents answer through Switchboard; what they post in the shared channel themselves is not a customer's.
    if user_id is None or user_id in {agent.slack_user_id for agent in config.agents}:
        return _ignored("not written by a customer", raw_event)
    text, files = _content(message)
    return CustomerPost(
        channel=event.channel,
        ts=event.ts,
        thread_ts=message.thread_ts or message.ts,
        user_id=user_id,
        text=text,
        edit_of=edit_of,
        files=files,
    )


def _content(message: _Message) -> tuple[str, tuple[SlackFile, ...]]:
    """The message's text with everything the person added to it, and its files."""
    text = plain_text(message.text)
    parts = [text] if text else []
    files = list(message.files)
    for attachment in message.attachments:
        if (shared := _shared_message(attachment, message.text)) is not None:
            parts.append(shared)
            files.extend(attachment.files)
    hidden = [link for link in _block_links(message.blocks) if link not in text]
    parts.extend(f"[link: {link}]" for link in dict.fromkeys(hidden))
    return "\n".join(parts), tuple(files)


def _content_key(message: _Message) -> tuple[str, tuple[str, ...]]:
    text, files = _content(message)
    return text, tuple(file.id for file in files)


def _shared_message(attachment: _MessageAttachment, markup: str) -> str | None:
    """A message the person shared, as text; None for a preview of a link already in their text."""
    url = attachment.from_url or attachment.original_url or attachment.title_link
    if not attachment.is_share and url and url in _unescape(markup):
        return None
    body = plain_text(attachment.text or attachment.fallback or attachment.title or "")
    origin = f" from {attachment.author_name}" if attachment.author_name else ""
    where = f" ({url})" if url else ""
    if not body and not where:
        return None
    return f"[shared message{origin}{where}]\n{body}" if body else f"[shared message{origin}{where}]"


def _block_links(blocks: list[dict[str, Any]]) -> list[str]:
    """The targets of links in rich-text blocks, for the rare message whose text lacks them."""
    links: list[str] = []
    pending: list[Any] = list(blocks)
    # Breadth-first, in document order: the loop reaches what it appends.
    for element in pending:
        if isinstance(element, dict):
            if element.get("type") == "link" and isinstance(element.get("url"), str):
                links.append(element["url"])
            if isinstance(element.get("elements"), list):
                pending.extend(element["elements"])
    return links


def _ignored(reason: str, event: dict[str, Any], *, malformed: bool = False) -> None:
    # Slack signed the event: a shape it never sends is worth a warning, anything else is routine.
    log = logger.warning if malformed else logger.debug
    log(
        "Slack message ignored: %s",
        reason,
        extra={
            "slack_channel": _text_or_none(event.get("channel")),
            "slack_subtype": _text_or_none(event.get("subtype")),
            "slack_ts": _text_or_none(event.get("ts")),
        },
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
