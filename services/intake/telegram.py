"""Telegram: the bot's webhook in (customer messages become ticket messages) and replies out.

In: `POST /v1/telegram/webhook` verifies Telegram's secret header, normalises the Update, stores
the files it carries, and publishes one `InboundMessage`; it answers 200 only after Kafka has the
message, because Telegram redelivers an update until it gets a 2xx. Whatever a person sends in the
private chat is carried: text with the links hidden behind it, files, contacts, locations, venues,
polls, dice ... (services.intake.telegram_content). What a help desk has no use for (group chats,
channel posts, inline queries, poll updates, payments ...) is answered 200 and dropped;
so are malformed updates, which redelivery could never fix. A `callback_query` is a pressed button of
the bot's CSAT keyboard (services.intake.telegram_callbacks): from the private chat of the rated ticket it
becomes a `RateTicket` command, and the keyboard is removed; every press is answered, others are ignored.

Conversations: a private chat continues its ticket until the customer sends `/new`. `/new` followed
by text (or as a photo's caption) opens a new ticket with that message; `/new` alone makes the next
message open one. An edit joins the ticket of the message it edits, a reply the ticket of the
message it answers. `/start` (and `/help`) get a greeting from the bot and open nothing.
`/email ADDRESS` is a message like any other that also gives the customer's email address (the sender's
`email`: claimed, since Telegram proves the user, not the address; the router decides what it links).

Out: `TelegramSender` delivers agent replies and acknowledgements for the notifier.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiokafka.errors import KafkaError
from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from telegram.error import BadRequest, NetworkError, TelegramError

from services.intake.core import Intake, with_refusals
from services.intake.csat import publish_rating
from services.intake.telegram_callbacks import RATING_THANKS, ButtonPress, read_callback_query
from services.intake.telegram_content import (
    Checklist,
    Dice,
    Entities,
    Game,
    Poll,
    Story,
    TextQuote,
    Venue,
    checklist_text,
    dice_text,
    external_reply_text,
    forwarded_from,
    game_text,
    poll_text,
    quote_text,
    story_text,
    venue_text,
    with_hidden_links,
)
from services.intake.ticket_ids import Resolution
from shared import i18n
from shared.attachments import AttachmentRejected
from shared.conversations import conversation_key, forget_conversation, telegram_chat, telegram_message
from shared.events import Attachment, InboundMessage, ReplyRoute, Sender
from shared.read_model import ticket_key
from shared.settings import Settings
from shared.state import RESTORED_KEY, StateNotRestored
from shared.telegram_bot import telegram_bot
from shared.untrusted import InvalidJson, parse_json, same_secret

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/v1/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What the bot answers /start (/help) and /new with, in the client's language (`language_code`) when there is a
# catalogue of it, else the desk's (shared/i18n.py `reader_locale`, the pick being `language_code`): catalogue
# IDs (shared/locales).
GREETING = "telegram.greeting"
NEW_TICKET_PROMPT = "telegram.new_ticket"
GREETING_COMMANDS = frozenset({"start", "help"})
NEW_TICKET_COMMAND = "new"
EMAIL_COMMAND = "email"


# --- Conversations --------------------------------------------------------------------------------


# --- The Update, as far as a help desk reads it ---------------------------------------------------
# Lenient on purpose: only the fields used here are declared, and fields Telegram added later
# (file_unique_id, ...) are optional, so older and newer payloads alike parse.


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _User(_Lenient):
    id: int
    is_bot: bool = False
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None
    # The IETF language tag of the user's Telegram client, when Telegram sends it (Bot API `User`).
    language_code: str | None = None


class _Chat(_Lenient):
    id: int
    type: str


class _File(_Lenient):
    file_id: str
    file_name: str | None = None
    mime_type: str | None = None
    file_size: int | None = None


class _PhotoSize(_Lenient):
    file_id: str
    width: int = 0
    height: int = 0
    file_size: int | None = None


class _Contact(_Lenient):
    phone_number: str
    first_name: str = ""
    last_name: str | None = None
    user_id: int | None = None


class _Location(_Lenient):
    latitude: float
    longitude: float


class _Sticker(_Lenient):
    emoji: str | None = None


class _RepliedTo(_Lenient):
    message_id: int


class _Message(_Lenient):
    message_id: int
    date: AwareDatetime
    chat: _Chat
    author: _User | None = Field(default=None, alias="from")
    edit_date: AwareDatetime | None = None
    text: str | None = None
    entities: Entities = []
    caption: str | None = None
    caption_entities: Entities = []
    photo: list[_PhotoSize] = []
    animation: _File | None = None
    document: _File | None = None
    audio: _File | None = None
    voice: _File | None = None
    video: _File | None = None
    video_note: _File | None = None
    contact: _Contact | None = None
    location: _Location | None = None
    sticker: _Sticker | None = None
    venue: Venue | None = None
    poll: Poll | None = None
    dice: Dice | None = None
    story: Story | None = None
    game: Game | None = None
    checklist: Checklist | None = None
    quote: TextQuote | None = None
    reply_to_message: _RepliedTo | None = None
    # A reply to a message of another chat: Telegram tells where it comes from.
    external_reply: dict[str, Any] | None = None
    # Bot API 7+ says forward_origin; older payloads say forward_date and forward_from(_chat).
    forward_origin: dict[str, Any] | None = None
    forward_date: int | None = None
    forward_from: dict[str, Any] | None = None
    forward_from_chat: dict[str, Any] | None = None
    forward_sender_name: str | None = None


class _Update(_Lenient):
    update_id: int
    message: _Message | None = None
    edited_message: _Message | None = None


# Media fields a customer's message may carry: (field, how to name it, content type when Telegram gives none).
# Animations also come as `document` for old clients, so the animation is read first and wins.
_MEDIA = (
    ("animation", "animation", "video/mp4"),
    ("document", "document", "application/octet-stream"),
    ("audio", "audio", "audio/mpeg"),
    ("voice", "voice message", "audio/ogg"),
    ("video", "video", "video/mp4"),
    ("video_note", "video message", "video/mp4"),
)


# --- What Switchboard makes of an Update ----------------------------------------------------------


@dataclass(frozen=True)
class TelegramFile:
    file_id: str
    # What the customer sent, as it reads in a placeholder text: "photo", "voice message" ...
    label: str
    content_type: str
    filename: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class CustomerMessage:
    """A message (or an edit of one) in a private chat: it belongs on a ticket."""

    update_id: int
    chat_id: int
    message_id: int
    sender: Sender
    text: str
    files: tuple[TelegramFile, ...]
    # When it was sent, or for an edit when it was edited.
    sent_at: datetime
    reply_to_message_id: int | None = None
    edited: bool = False
    starts_new_ticket: bool = False
    # The client's language (Bot API `language_code`): the router's first guess at the customer's language.
    language_hint: str | None = None

    @property
    def original_id(self) -> str:
        return f"{self.chat_id}:{self.message_id}"

    @property
    def channel_message_id(self) -> str:
        # An edit keeps the message's Telegram ID; the edit time tells the versions apart.
        return f"{self.original_id}:edit:{int(self.sent_at.timestamp())}" if self.edited else self.original_id


@dataclass(frozen=True)
class BotCommand:
    """A command the bot answers itself, without a ticket message."""

    chat_id: int
    command: Literal["start", "new"]
    # The client's language (Bot API `language_code`), for the bot's answer.
    language_code: str | None = None


@dataclass(frozen=True)
class Ignored:
    reason: str
    # False: ignored by design (a group chat, a poll ...). True: not a shape Telegram sends.
    malformed: bool = False


TelegramInput = CustomerMessage | BotCommand | Ignored


def normalise_update(update: object) -> TelegramInput:
    """What an Update means to a help desk. Pure, and never raises."""
    if not isinstance(update, dict):
        return Ignored("the update is not a JSON object", malformed=True)
    kind = next((key for key in update if key != "update_id"), None)
    if kind not in ("message", "edited_message"):
        return Ignored(f"{kind or 'empty'} updates carry no customer message")
    try:
        parsed = _Update.model_validate(update)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        return Ignored(f"malformed {kind}: {location}: {first['msg']}", malformed=True)
    message = parsed.message or parsed.edited_message
    if message is None:
        return Ignored(f"{kind} is empty", malformed=True)
    if message.chat.type != "private":
        return Ignored(f"{message.chat.type} chats are not support conversations")
    if message.author is None or message.author.is_bot:
        return Ignored("not written by a person")
    return _customer_message(parsed.update_id, message, message.author, update[kind], edited=kind == "edited_message")


def _customer_message(update_id: int, message: _Message, author: _User, raw: Any, *, edited: bool) -> TelegramInput:
    files = _files_of(message)
    if message.text is not None:
        body = with_hidden_links(message.text, message.entities)
    else:
        body = with_hidden_links(message.caption or "", message.caption_entities)
    command, rest = _command(body)
    starts_new_ticket = False
    if command in GREETING_COMMANDS and not files:
        return Ignored("an edited command") if edited else BotCommand(message.chat.id, "start", author.language_code)
    if command == NEW_TICKET_COMMAND:
        body, starts_new_ticket = rest, True
        if not body and not files:
            return Ignored("an edited command") if edited else BotCommand(message.chat.id, "new", author.language_code)

    parts = [body] if body else []
    email = _email_address(rest) if command == EMAIL_COMMAND else None
    phone = None
    if message.contact:
        contact = message.contact
        number = contact.phone_number
        # Only a customer's own contact proves their number; Telegram usually leaves out the "+".
        if contact.user_id == author.id:
            number = phone = number if number.startswith("+") else f"+{number}"
        parts.append(f"[contact: {_full_name(contact.first_name, contact.last_name) or 'no name'}, {number}]")
    if message.venue:
        # A venue comes with its location too; the venue names it.
        parts.append(venue_text(message.venue))
    elif message.location:
        parts.append(f"[location: {message.location.latitude}, {message.location.longitude}]")
    if message.sticker:
        parts.append(f"[sticker {message.sticker.emoji}]" if message.sticker.emoji else "[sticker]")
    described = (
        (message.poll, poll_text),
        (message.dice, dice_text),
        (message.checklist, checklist_text),
        (message.game, game_text),
        (message.story, story_text),
    )
    parts.extend(describe(content) for content, describe in described if content is not None)
    if not parts and not files:
        present = ", ".join(sorted(set(raw) - {"message_id", "date", "chat", "from"})) if isinstance(raw, dict) else ""
        return Ignored(f"nothing for a ticket in a message with {present or 'no content'}")
    if not parts:
        parts = [" ".join(f"[{file.label}: {file.filename}]" if file.filename else f"[{file.label}]" for file in files)]
    if message.quote is not None and (quoted := quote_text(message.quote)):
        # The part of the replied message the customer quoted.
        parts.insert(0, quoted)
    if message.external_reply is not None:
        parts.insert(0, external_reply_text(message.external_reply))
    if message.forward_origin is not None or message.forward_date is not None:
        origin = message.forward_origin or {
            "sender_user": message.forward_from,
            "chat": message.forward_from_chat,
            "sender_user_name": message.forward_sender_name,
        }
        parts.insert(0, forwarded_from(origin))

    return CustomerMessage(
        update_id=update_id,
        chat_id=message.chat.id,
        message_id=message.message_id,
        sender=Sender(
            name=_full_name(author.first_name, author.last_name) or None,
            email=email,
            phone=phone,
            telegram_user_id=author.id,
            telegram_username=author.username,
        ),
        text="\n".join(parts),
        files=files,
        sent_at=(message.edit_date or message.date) if edited else message.date,
        reply_to_message_id=message.reply_to_message.message_id if message.reply_to_message else None,
        edited=edited,
        starts_new_ticket=starts_new_ticket,
        language_hint=author.language_code[:64] if author.language_code else None,
    )


def _files_of(message: _Message) -> tuple[TelegramFile, ...]:
    files = []
    if message.photo:
        # Telegram sends every size it made of a photo; the largest is the original.
        largest = max(message.photo, key=lambda size: (size.width * size.height, size.file_size or 0))
        files.append(TelegramFile(largest.file_id, "photo", "image/jpeg", size=largest.file_size))
    for field, label, default_type in _MEDIA:
        media: _File | None = getattr(message, field)
        if media is None or (field == "document" and message.animation is not None):
            continue
        files.append(
            TelegramFile(media.file_id, label, media.mime_type or default_type, media.file_name, media.file_size)
        )
    return tuple(files)


def _command(text: str) -> tuple[str | None, str]:
    """("new", "rest of the text") for "/new rest of the text" or "/new@our_bot ..."; (None, text) otherwise."""
    if not text.startswith("/"):
        return None, text
    head, _, rest = text.partition(" ")
    return head[1:].split("@", 1)[0].lower(), rest.strip()


def _email_address(text: str) -> str | None:
    """The address of "/email ADDRESS" (RFC 5322 syntax, no DNS lookup), or None when it is none."""
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def _full_name(first: str, last: str | None) -> str:
    return " ".join(part for part in (first, last) if part)


def thread_keys(message: CustomerMessage) -> tuple[list[str], list[str]]:
    """Where to look for the message's ticket, and which conversations lead to that ticket afterwards."""
    chat = telegram_chat(message.chat_id)
    own = telegram_message(message.chat_id, message.message_id)
    if message.edited:
        # An edit stays with the original's ticket and moves nothing.
        return [own, chat], []
    if message.starts_new_ticket:
        return [], [chat, own]
    replied = [telegram_message(message.chat_id, message.reply_to_message_id)] if message.reply_to_message_id else []
    return [*replied, chat], [chat, own]


def to_inbound(
    message: CustomerMessage,
    *,
    resolution: Resolution,
    attachments: list[Attachment],
    refusals: list[str],
) -> InboundMessage:
    return InboundMessage.received(
        **resolution.fields(),
        channel="telegram",
        kind="edit" if message.edited else "message",
        channel_message_id=message.channel_message_id,
        source="telegram",
        sender=message.sender,
        subject=None,
        text=with_refusals(message.text, refusals),
        attachments=attachments,
        reply_route=ReplyRoute(channel="telegram", address=str(message.chat_id), reply_to_id=str(message.message_id)),
        edit_of=message.original_id if message.edited else None,
        received_at=message.sent_at,
        language_hint=message.language_hint,
    )


# --- The webhook ----------------------------------------------------------------------------------


def telegram_routes(intake: Intake, settings: Settings) -> APIRouter | None:
    """The webhook's router, or None (and a log line saying why) when Telegram is not configured."""
    missing = [
        f"SWITCHBOARD_TELEGRAM_{name}"
        for name, value in (
            ("BOT_TOKEN", settings.telegram_bot_token),
            ("WEBHOOK_SECRET", settings.telegram_webhook_secret),
        )
        if not value
    ]
    if missing:
        logger.warning("Telegram is off: %s not set", " and ".join(missing))
        return None
    assert settings.telegram_webhook_secret is not None
    secret = settings.telegram_webhook_secret.get_secret_value()
    bot = telegram_bot(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await bot.request.initialize()
        try:
            yield
        finally:
            await bot.request.shutdown()

    router = APIRouter(lifespan=lifespan)

    @router.post(WEBHOOK_PATH)
    async def webhook(request: Request) -> Response:
        # Before anything else: only Telegram knows the secret, and nobody else may make us act.
        if not same_secret(request.headers.get(SECRET_HEADER, ""), secret):
            raise HTTPException(status_code=401, detail=f"missing or wrong {SECRET_HEADER}")
        try:
            update = parse_json(await request.body())
        except InvalidJson as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        received = read_callback_query(update) or normalise_update(update)
        try:
            if isinstance(received, ButtonPress):
                await button_pressed(received)
            elif isinstance(received, CustomerMessage):
                await accept(received)
            elif isinstance(received, BotCommand):
                await answer(received)
            else:
                log = logger.warning if received.malformed else logger.debug
                log("Telegram update ignored", extra={"update_id": _update_id(update), "reason": received.reason})
        except (KafkaError, NetworkError) as error:
            logger.error(
                "Telegram update not taken, Telegram will redeliver",
                extra={"update_id": _update_id(update), "error": repr(error)},
            )
            raise HTTPException(status_code=503, detail="temporarily unavailable, retry later") from error
        return Response(status_code=200)

    async def accept(message: CustomerMessage) -> None:
        attachments, refusals = await store_files(message.files)
        channel_key = f"telegram:update:{message.update_id}"
        lookup, remember = thread_keys(message)
        resolution = await intake.resolve_ticket(channel_key, lookup=lookup, remember=remember)
        await intake.publish(
            to_inbound(
                message,
                resolution=resolution,
                attachments=attachments,
                refusals=refusals,
            )
        )

    async def store_files(files: tuple[TelegramFile, ...]) -> tuple[list[Attachment], list[str]]:
        """The files stored, and why the others were refused. Network errors propagate: Telegram redelivers."""
        stored, refusals = [], []
        for file in files:
            try:
                # Checked before downloading, with the size Telegram announced: no point fetching a refusal.
                intake.attachments.check(file.filename, file.content_type, file.size or 0)
                content = await (await bot.get_file(file.file_id)).download_as_bytearray()
                stored.append(
                    intake.attachments.save(bytes(content), filename=file.filename, content_type=file.content_type)
                )
            except AttachmentRejected as rejection:
                refusals.append(str(rejection))
            except BadRequest as error:
                # e.g. "file is too big": bots may download files of up to 20 MB only.
                refusals.append(f"{file.filename or file.label}: {error.message}")
        return stored, refusals

    async def button_pressed(press: ButtonPress) -> None:
        """A rating from the rated ticket's own chat is published; every press is answered, the rest ignored."""
        rating = press.rating if await rated_from_its_chat(press) else None
        if rating is not None:
            await publish_rating(intake, rating)
        else:
            logger.info("Telegram button press ignored", extra={"rating": press.rating is not None})
        try:
            thanks = await rating_thanks(rating.ticket_id) if rating else None
            await bot.answer_callback_query(press.query_id, text=thanks)
            if rating is not None:
                # The keyboard goes: the rating is made, and pressing again would change nothing.
                await bot.edit_message_reply_markup(chat_id=press.chat_id, message_id=press.message_id)
        except TelegramError as error:
            # The rating is on Kafka; a missed answer only leaves a spinner or the keyboard in the chat.
            logger.warning("could not answer a Telegram button press", extra={"error": repr(error)})

    async def rating_thanks(ticket_id: str) -> str:
        """The thanks for a rating, in the rated ticket's customer language."""
        locale = await intake.redis.hget(ticket_key(ticket_id), "customer_language")
        return i18n.texts(locale or intake.config.desk_locale)(RATING_THANKS)

    async def rated_from_its_chat(press: ButtonPress) -> bool:
        """Whether the press rates, and the keyboard's message or else its chat leads to the rated ticket."""
        if press.rating is None or press.chat_id is None or press.message_id is None:
            return False
        async with intake.redis.pipeline(transaction=True) as pipe:
            pipe.exists(RESTORED_KEY)
            pipe.get(conversation_key(telegram_message(press.chat_id, press.message_id)))
            pipe.get(conversation_key(telegram_chat(press.chat_id)))
            restored, *tickets = await pipe.execute()
        if not restored:
            # Without its state Redis knows no chat: Telegram redelivers the press after the replay.
            raise StateNotRestored()
        return press.rating.ticket_id in tickets

    async def answer(command: BotCommand) -> None:
        if command.command == NEW_TICKET_COMMAND:
            # Forgetting the chat's ticket makes the next message open a new one.
            await forget_conversation(intake.redis, [telegram_chat(command.chat_id)])
        texts = i18n.reader_texts(
            picked=command.language_code, accept_language=None, desk_locale=intake.config.desk_locale
        )
        text = texts(NEW_TICKET_PROMPT if command.command == NEW_TICKET_COMMAND else GREETING)
        try:
            await bot.send_message(chat_id=command.chat_id, text=text)
        except TelegramError as error:
            # A missed greeting is not worth having Telegram redeliver the update.
            logger.warning(
                "could not answer a Telegram command", extra={"command": command.command, "error": repr(error)}
            )

    return router


def _update_id(update: object) -> object:
    return update.get("update_id") if isinstance(update, dict) else None


# --- Replies out ----------------------------------------------------------------------------------
