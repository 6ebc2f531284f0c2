"""Messages to customers' Telegram chats: agent replies and acknowledgements."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from telegram import ReplyParameters
from telegram.constants import MessageLimit
from telegram.error import BadRequest, Forbidden, RetryAfter

from shared.broker import PermanentFailure
from shared.events import ReplyRoute
from shared.settings import Settings
from shared.telegram_bot import telegram_bot

logger = logging.getLogger(__name__)

SEND_DEADLINE_SECONDS = 60.0


class TelegramSender:
    """Sends the notifier's messages (agent replies, acknowledgements) to customers' chats."""

    def __init__(self, settings: Settings):
        self.bot = telegram_bot(settings)

    async def send(self, route: ReplyRoute, text: str, *, deadline: float = SEND_DEADLINE_SECONDS) -> str:
        """Sends `text` to the route's chat, answering its message; returns the sent message_id.

        A text longer than Telegram allows goes out as several messages; the first one's ID is
        returned. Flood control (429) is waited out until `deadline` seconds have passed, then
        RetryAfter is raised for the caller's retry policy. A blocked bot or a chat Telegram does
        not know raises PermanentFailure. Network errors propagate.
        """
        give_up_at = time.monotonic() + deadline
        reply_to = (
            ReplyParameters(message_id=int(route.reply_to_id), allow_sending_without_reply=True)
            if route.reply_to_id
            else None
        )
        sent = [
            await self._send_one(route.address, chunk, reply_to if index == 0 else None, give_up_at)
            for index, chunk in enumerate(split_for_telegram(text))
        ]
        return str(sent[0])

    async def _send_one(self, chat_id: str, text: str, reply_to: ReplyParameters | None, give_up_at: float) -> int:
        while True:
            try:
                message = await self.bot.send_message(chat_id=chat_id, text=text, reply_parameters=reply_to)
                return message.message_id
            except RetryAfter as error:
                wait = _seconds(error.retry_after)
                if time.monotonic() + wait > give_up_at:
                    raise
                logger.info("Telegram flood control, waiting", extra={"retry_in_s": wait})
                await asyncio.sleep(wait)
            except (Forbidden, BadRequest) as error:
                # Blocked by the user, chat not found, message refused: sending again cannot help.
                raise PermanentFailure(f"Telegram refused the message: {error.message}") from error

    async def aclose(self) -> None:
        await self.bot.request.shutdown()


def split_for_telegram(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """The text in messages Telegram accepts (it counts UTF-16 code units), cut at line breaks where possible."""
    chunks = []
    rest = text
    while rest:
        cut = _fitting_length(rest, limit)
        newline = rest.rfind("\n", 0, cut) if cut < len(rest) else -1
        if newline > 0:
            chunk, rest = rest[:newline], rest[newline + 1 :]
        else:
            chunk, rest = rest[:cut], rest[cut:]
        if chunk.strip():
            chunks.append(chunk)
    # A blank text is sent as it is, for Telegram to refuse in its own words.
    return chunks or [text]


def _fitting_length(text: str, limit: int) -> int:
    """How many characters of `text` fit in `limit` UTF-16 code units."""
    units = 0
    for index, character in enumerate(text):
        units += 2 if ord(character) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def _seconds(retry_after: int | timedelta) -> float:
    # python-telegram-bot gives seconds, or a timedelta when PTB_TIMEDELTA is set.
    return retry_after.total_seconds() if isinstance(retry_after, timedelta) else float(retry_after)
