"""A customer's CSAT rating, however it arrives: the rating page's form, a Telegram button, a web-chat frame.

Pure: reading what the channel sent into a `Rating`, and the `RateTicket` command a rating becomes.
The wire formats are fixed between intake and the notifier (which asks for the rating):

- Telegram inline keyboard `callback_data`: `csat:<ticket_id>:<resolution>:<score>` (≤ 64 bytes, Bot API
  InlineKeyboardButton).
- web chat, client → server: `{"type": "csat", "resolution": n, "score": s}` (the session names the ticket);
  server → client `{"type": "csat", "ticket_id", "resolution", "scores": [1, 2, 3, 4, 5]}`.
- the rating page: fields `score` (1–5) and an optional `comment` (≤ 2,000 characters).

Every rating is the command `RateTicket(agent_id="customer")` with the ID `derived_id("csat", ticket_id,
resolution)`: rating the same resolution twice is the same command, and the router keeps the first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shared import i18n
from shared.events import RateTicket
from shared.ids import derived_id

MIN_SCORE, MAX_SCORE = 1, 5
SCORES = tuple(range(MIN_SCORE, MAX_SCORE + 1))
MAX_COMMENT_CHARS = 2_000
# Ticket IDs as shared.ids makes them; resolutions count from 1; one digit of score. ASCII digits only
# (`\d` would take any script's digits) and matched whole (`$` would let a trailing newline through).
_CALLBACK_DATA = re.compile(r"csat:(?P<ticket>[A-Z]{2,5}-[0-9]+):(?P<resolution>[1-9][0-9]{0,8}):(?P<score>[1-5])")


@dataclass(frozen=True)
class Rating:
    """One customer's rating of one resolution of a ticket: score 1 (bad) to 5 (great), maybe a comment."""

    ticket_id: str
    resolution: int
    score: int
    comment: str | None = None


def rating_command(rating: Rating, now: datetime) -> RateTicket:
    """The command a rating becomes; the same resolution rated again gets the same command ID."""
    return RateTicket(
        event_id=derived_id("csat", rating.ticket_id, rating.resolution),
        occurred_at=now,
        ticket_id=rating.ticket_id,
        agent_id="customer",
        resolution=rating.resolution,
        score=rating.score,
        comment=rating.comment,
    )


def parse_callback_data(data: str) -> Rating | None:
    """The rating a Telegram button carries (`csat:SB-1042:1:5`), or None for anything else. Never raises."""
    match = _CALLBACK_DATA.fullmatch(data)
    if match is None:
        return None
    return Rating(match["ticket"], int(match["resolution"]), int(match["score"]))


def _blank_as_none(value: object) -> object:
    # A browser sends an untouched comment box as "" and a page without a chosen score as no field at all.
    if isinstance(value, str) and not value.strip():
        return None
    return value.strip() if isinstance(value, str) else value


class RatingForm(BaseModel):
    """What the rating page (or a JSON client of it) posts. Lax on purpose: a form's score arrives as "4"."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    score: Annotated[int, Field(ge=MIN_SCORE, le=MAX_SCORE), BeforeValidator(_blank_as_none)]
    comment: Annotated[str | None, Field(max_length=MAX_COMMENT_CHARS), BeforeValidator(_blank_as_none)] = None


class ChatRating(BaseModel):
    """The web chat's client → server rating frame; the session's ticket is the one rated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["csat"]
    resolution: int = Field(ge=1, strict=True)
    score: int = Field(ge=MIN_SCORE, le=MAX_SCORE, strict=True)


def unanswered_request(ticket: Mapping[str, str]) -> int | None:
    """The resolution a customer was asked to rate and has not, while the ticket stays solved, from its
    read-model HASH (`status`, `resolutions`, `csat_asked`, `csat_resolution`); else None. A web-chat page
    that was away when the request was pushed shows it when it comes back. Never raises."""
    try:
        asked, resolutions = int(ticket.get("csat_asked", 0)), int(ticket.get("resolutions", 0))
        rated = int(ticket.get("csat_resolution", 0))
    except ValueError:
        return None
    if ticket.get("status") != "solved" or asked < 1 or asked != resolutions or rated >= asked:
        return None
    return asked


def chat_request(ticket_id: str, resolution: int) -> dict[str, object]:
    """The web chat's server → client rating request, as the notifier pushes it."""
    return {"type": "csat", "ticket_id": ticket_id, "resolution": resolution, "scores": list(SCORES)}


@dataclass(frozen=True)
class FormProblems:
    """Why a posted rating form was refused, by field, in words for the customer."""

    errors: dict[str, str]


def read_rating_form(fields: dict[str, object], texts: i18n.Texts | None = None) -> RatingForm | FormProblems:
    """The rating form's score and comment, or what is wrong with them in `texts`' language (default en).
    Never raises."""
    texts = texts or i18n.texts(None)
    try:
        return RatingForm.model_validate(fields)
    except ValidationError as error:
        problems: dict[str, str] = {}
        for detail in error.errors():
            field = str(detail["loc"][0]) if detail["loc"] else "score"
            if field == "comment" and detail["type"] == "string_too_long":
                length = len(str(fields.get("comment", "")).strip())
                problems["comment"] = texts.plural("csat.error.comment_too_long", MAX_COMMENT_CHARS, length=length)
            elif field == "comment":
                problems["comment"] = texts("csat.error.comment_text")
            else:
                problems["score"] = texts("csat.error.score")
        return FormProblems(problems)
