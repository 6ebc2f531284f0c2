"""Telegram `callback_query` updates: a customer pressed a button of an inline keyboard the bot sent.

Pure reading of the update (Bot API, CallbackQuery): who may be answered (`id`), the message that carries
the keyboard (its chat and ID, when Telegram includes it) and the button's `data`. The only buttons the
bot sends are the CSAT ratings (`csat:<ticket_id>:<resolution>:<score>`, services.intake.ratings); every
query, rating or not, must be answered (answerCallbackQuery), or the customer's client shows a spinner.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.intake.ratings import Rating, parse_callback_data

# The answer to a rating, a catalogue ID: in the rated ticket's customer language.
RATING_THANKS = "chat.csat.thanks"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _Chat(_Lenient):
    id: int
    type: str


class _KeyboardMessage(_Lenient):
    # A MaybeInaccessibleMessage: an old message comes with date 0 and little else, but always its chat.
    message_id: int
    chat: _Chat


class _User(_Lenient):
    id: int


class _CallbackQuery(_Lenient):
    id: str = Field(min_length=1)
    author: _User = Field(alias="from")
    message: _KeyboardMessage | None = None
    data: str | None = None


@dataclass(frozen=True)
class ButtonPress:
    """A pressed inline-keyboard button; `rating` is set when its data is a well-formed CSAT rating."""

    query_id: str
    # The private chat and message of the keyboard; None when Telegram did not say or it is no private chat.
    chat_id: int | None
    message_id: int | None
    rating: Rating | None


def read_callback_query(update: object) -> ButtonPress | None:
    """The button press an Update carries, or None when it is no (well-formed) callback_query. Never raises."""
    if not isinstance(update, dict) or not isinstance(update.get("callback_query"), dict):
        return None
    try:
        query = _CallbackQuery.model_validate(update["callback_query"])
    except ValidationError:
        return None
    message = query.message
    private = message is not None and message.chat.type == "private" and message.chat.id == query.author.id
    return ButtonPress(
        query_id=query.id,
        chat_id=message.chat.id if private and message else None,
        message_id=message.message_id if private and message else None,
        rating=parse_callback_data(query.data) if query.data is not None else None,
    )
