"""What a Telegram message says beyond its plain text, as text for the ticket. Pure.

Links hidden behind text (`text_link` entities, in texts and captions alike) keep their target
visible: "our docs (https://…)". Venues, polls, dice, checklists, games and stories a person sends
read as a bracketed line, like contacts and locations do; so do the origins of forwards and of
replies to other chats, and the part of a message a reply quotes. Shapes: https://core.telegram.org/bots/api#message
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _objects_only(value: Any) -> Any:
    # One odd item (Telegram never sends one) costs that item, not the customer's message.
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else value


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _MentionedUser(_Lenient):
    id: int
    first_name: str = ""


class MessageEntity(_Lenient):
    type: str
    # In UTF-16 code units, as Telegram counts them.
    offset: int
    length: int
    url: str | None = None
    user: _MentionedUser | None = None


Entities = Annotated[list[MessageEntity], BeforeValidator(_objects_only)]


class _Location(_Lenient):
    latitude: float
    longitude: float


class Venue(_Lenient):
    location: _Location
    title: str = ""
    address: str = ""


class _Option(_Lenient):
    text: str = ""


class Poll(_Lenient):
    question: str = ""
    options: Annotated[list[_Option], BeforeValidator(_objects_only)] = []


class Dice(_Lenient):
    emoji: str = "🎲"
    value: int | None = None


class _StoryChat(_Lenient):
    title: str | None = None
    username: str | None = None
    first_name: str | None = None


class Story(_Lenient):
    chat: _StoryChat | None = None


class Game(_Lenient):
    title: str = ""


class _Task(_Lenient):
    text: str = ""


class Checklist(_Lenient):
    title: str = ""
    tasks: Annotated[list[_Task], BeforeValidator(_objects_only)] = []


class TextQuote(_Lenient):
    text: str = ""


def with_hidden_links(text: str, entities: Sequence[MessageEntity]) -> str:
    """`text` with the target of every link hidden behind it after the link's text.

    `text_link` entities give a URL, `text_mention` a user without a username (tg://user?id=…).
    An entity whose offsets do not fit the text is not lost: its target is listed at the end.
    """
    encoded = text.encode("utf-16-le")
    units = len(encoded) // 2
    insertions: list[tuple[int, str]] = []
    unplaced: list[str] = []
    for entity in entities:
        target = _target(entity)
        if target is None:
            continue
        end = entity.offset + entity.length
        label = _utf16_slice(encoded, entity.offset, end) if 0 <= entity.offset < end <= units else None
        if label is None:
            unplaced.append(target)
        elif label.strip() not in (target, target.split("://", 1)[-1]):
            insertions.append((end, f" ({target})"))
    # From the end backwards, so that earlier offsets still hold; the same link twice is shown once.
    for end, suffix in sorted(dict.fromkeys(insertions), key=lambda insertion: insertion[0], reverse=True):
        encoded = encoded[: end * 2] + suffix.encode("utf-16-le") + encoded[end * 2 :]
    lines = [encoded.decode("utf-16-le")] if encoded else []
    lines.extend(f"[link: {target}]" for target in dict.fromkeys(unplaced))
    return "\n".join(lines)


def _target(entity: MessageEntity) -> str | None:
    if entity.type == "text_link" and entity.url:
        return entity.url
    if entity.type == "text_mention" and entity.user is not None:
        return f"tg://user?id={entity.user.id}"
    return None


def _utf16_slice(encoded: bytes, start: int, end: int) -> str | None:
    """Units start..end of UTF-16-LE text; None when either end splits a character."""
    try:
        encoded[: start * 2].decode("utf-16-le")
        return encoded[start * 2 : end * 2].decode("utf-16-le")
    except UnicodeDecodeError:
        return None


def venue_text(venue: Venue) -> str:
    place = ", ".join(part for part in (venue.title, venue.address) if part)
    return f"[venue: {place + ' ' if place else ''}({venue.location.latitude}, {venue.location.longitude})]"


def poll_text(poll: Poll) -> str:
    options = " / ".join(option.text for option in poll.options)
    return f"[poll: {poll.question}{f' — {options}' if options else ''}]"


def dice_text(dice: Dice) -> str:
    return f"[dice {dice.emoji}: {dice.value}]" if dice.value is not None else f"[dice {dice.emoji}]"


def story_text(story: Story) -> str:
    chat = story.chat
    origin = chat and (f"@{chat.username}" if chat.username else chat.title or chat.first_name)
    return f"[story from {origin}]" if origin else "[story]"


def game_text(game: Game) -> str:
    return f"[game: {game.title}]" if game.title else "[game]"


def checklist_text(checklist: Checklist) -> str:
    tasks = "\n".join(f"- {task.text}" for task in checklist.tasks)
    return f"[checklist: {checklist.title}]" + (f"\n{tasks}" if tasks else "")


def quote_text(quote: TextQuote) -> str:
    return "\n".join(f"> {line}" for line in quote.text.splitlines()) if quote.text else ""


def forwarded_from(origin: object) -> str:
    """The line that marks a forward, naming its origin (MessageOrigin) when Telegram tells it."""
    name = origin_name(origin)
    return f"[forwarded from {name}]" if name else "[forwarded message]"


def external_reply_text(external: object) -> str:
    """The line that marks a reply to a message of another chat (ExternalReplyInfo)."""
    name = origin_name(external.get("origin")) if isinstance(external, dict) else None
    return f"[in reply to a message from {name}]" if name else "[in reply to a message from another chat]"


def origin_name(origin: object) -> str | None:
    """Who or which chat a MessageOrigin names, if anyone."""
    if not isinstance(origin, dict):
        return None
    if isinstance(origin.get("sender_user_name"), str) and origin["sender_user_name"]:
        return origin["sender_user_name"]
    names = (_name_of(origin.get(key)) for key in ("sender_user", "sender_chat", "chat"))
    return next(filter(None, names), None)


def _name_of(user_or_chat: object) -> str | None:
    if not isinstance(user_or_chat, dict):
        return None
    if isinstance(title := user_or_chat.get("title"), str) and title:
        return title
    names = [user_or_chat.get(key) for key in ("first_name", "last_name")]
    if full := " ".join(name for name in names if isinstance(name, str) and name):
        return full
    username = user_or_chat.get("username")
    return f"@{username}" if isinstance(username, str) and username else None
