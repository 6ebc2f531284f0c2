"""Messages to customers' Telegram chats: agent replies, acknowledgements and rating requests.

Telegram allows a bot about 30 messages per second overall and about one per second in one chat
(https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this); the sender
paces itself to that, and flood control (HTTP 429 with retry_after) becomes `RateLimited`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.constants import MessageLimit
from telegram.error import BadRequest, Forbidden, RetryAfter

from services.notifier.chunks import split_at_lines
from services.notifier.errors import RateLimited, Refused
from services.notifier.pacing import Pacing
from shared.events import ReplyRoute
from shared.settings import Settings
from shared.telegram_bot import telegram_bot

logger = logging.getLogger(__name__)

MESSAGES_PER_SECOND = 30.0
MESSAGES_PER_SECOND_PER_CHAT = 1.0


class TelegramSender:
    """Sends the notifier's messages (agent replies, acknowledgements) to customers' chats."""

    def __init__(self, settings: Settings):
        self.bot = telegram_bot(settings)
        self.pacing = Pacing(MESSAGES_PER_SECOND, MESSAGES_PER_SECOND_PER_CHAT, burst_per_key=3)

    async def send(self, route: ReplyRoute, text: str, keyboard: list[list[tuple[str, str]]] | None = None) -> str:
        """Sends `text` to the route's chat, answering its message; returns the sent message_id.

        A text longer than Telegram allows goes out as several messages; the first one's ID is
        returned. `keyboard`: rows of (label, callback_data), an inline keyboard under the last
        message. Raises RateLimited on flood control, Refused when the bot is blocked or the chat
        unknown; network errors propagate.
        """
        rows = [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in keyboard or []]
        markup = InlineKeyboardMarkup(rows) if rows else None
        reply_to = (
            ReplyParameters(message_id=int(route.reply_to_id), allow_sending_without_reply=True)
            if route.reply_to_id
            else None
        )
        chunks = split_for_telegram(text)
        sent = [
            await self._send_one(
                route.address, chunk, reply_to if index == 0 else None, markup if index == len(chunks) - 1 else None
            )
            for index, chunk in enumerate(chunks)
        ]
        return str(sent[0])

    async def _send_one(
        self, chat_id: str, text: str, reply_to: ReplyParameters | None, markup: InlineKeyboardMarkup | None
    ) -> int:
        await self.pacing.wait(chat_id)
        try:
            message = await self.bot.send_message(
                chat_id=chat_id, text=text, reply_parameters=reply_to, reply_markup=markup
            )
        except RetryAfter as error:
            raise RateLimited(_seconds(error.retry_after)) from error
        except (Forbidden, BadRequest) as error:
            # Blocked by the user, chat not found, message refused: sending again cannot help.
            raise Refused(f"Telegram refused the message: {error.message}") from error
        return message.message_id

    async def aclose(self) -> None:
        await self.bot.request.shutdown()


def split_for_telegram(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """The text in messages Telegram accepts (it counts UTF-16 code units), cut at line breaks where possible."""
    return split_at_lines(text, limit, lambda character: 2 if ord(character) > 0xFFFF else 1)


def _seconds(retry_after: int | timedelta) -> float:
    # python-telegram-bot gives seconds, or a timedelta when PTB_TIMEDELTA is set.
    return retry_after.total_seconds() if isinstance(retry_after, timedelta) else float(retry_after)
