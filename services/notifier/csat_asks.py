"""How the customer is asked for a rating (CSAT) on each channel, in the wire formats intake reads back. Pure.

- Telegram: an inline keyboard of 1–5, callback_data `csat:<ticket_id>:<resolution>:<score>` (Telegram
  allows 1–64 bytes: https://core.telegram.org/bots/api#inlinekeyboardbutton).
- Web chat: the frame `{"type": "csat", "ticket_id", "resolution", "scores": [1, 2, 3, 4, 5]}`.
- Slack Connect: buttons with action_id `sb_csat`, value `<ticket_id>:<resolution>:<score>`.
- Email: the text and a link to the rating page (`shared.csat.csat_url`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from services.notifier.slack_text import escape
from shared import i18n
from shared.csat import CsatSubject
from shared.signed_links import TOKEN_VALID_SECONDS

SCORES = (1, 2, 3, 4, 5)
LABELS = {1: "1 😞", 2: "2 🙁", 3: "3 😐", 4: "4 🙂", 5: "5 😀"}
TELEGRAM_CALLBACK_BYTES = 64
# A score at or below this pings the team lead in the ticket's thread.
LOW_SCORE = 2


def request_text(ticket_id: str, locale: str | None = None) -> str:
    """The rating request in the customer's language (`csat.request`; None: en)."""
    return i18n.texts(locale)("csat.request", ticket_id=ticket_id)


def email_body(ticket_id: str, link: str, locale: str | None, timezone: str | None, now: datetime) -> str:
    """The rating request by email: the link opens the rating page in the customer's language, and says until
    when it works in their time zone (UTC when unknown)."""
    texts = i18n.texts(locale)
    valid_until = i18n.format_datetime(now + timedelta(seconds=TOKEN_VALID_SECONDS), texts.locale, timezone)
    return texts("csat.email_body", ticket_id=ticket_id, link=page_link(link, texts.locale), valid_until=valid_until)


def page_link(link: str, locale: str) -> str:
    """The rating page's link showing the page in `locale` (`?lang=`; the page falls back to the browser's)."""
    return f"{link}?{urlencode({'lang': locale})}"


def chat_text(delivery_text: str, subject: CsatSubject | None, link: Callable[[CsatSubject], str] | None) -> str | None:
    """A plain-text chat's message (WhatsApp, WeChat): the text, then the rating link when it asks for a rating;
    None when it asks for one and no link can be made (no public URL configured)."""
    if subject is None:
        return delivery_text
    if link is None:
        return None
    return f"{delivery_text}\n{link(subject)}"


def telegram_keyboard(subject: CsatSubject) -> list[list[tuple[str, str]]]:
    """One row of (label, callback_data); raises ValueError if a callback_data would pass Telegram's 64 bytes."""
    row = [(LABELS[score], f"csat:{subject.ticket_id}:{subject.resolution}:{score}") for score in SCORES]
    if any(len(data.encode()) > TELEGRAM_CALLBACK_BYTES for _, data in row):
        raise ValueError(f"callback_data of {subject.ticket_id} is longer than Telegram's 64 bytes")
    return [row]


def chat_frame(subject: CsatSubject) -> dict[str, Any]:
    return {"type": "csat", "ticket_id": subject.ticket_id, "resolution": subject.resolution, "scores": list(SCORES)}


def slack_blocks(subject: CsatSubject, text: str) -> list[dict[str, Any]]:
    """The request's `text` (`request_text`, in the customer's language) and a button per score."""
    buttons = [
        {
            "type": "button",
            "action_id": "sb_csat",
            "text": {"type": "plain_text", "text": LABELS[score], "emoji": True},
            "value": f"{subject.ticket_id}:{subject.resolution}:{score}",
        }
        for score in SCORES
    ]
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": escape(text)}},
        {"type": "actions", "block_id": "sb_csat", "elements": buttons},
    ]


def low_score_text(ticket_id: str, score: int, comment: str | None, mention: str | None) -> str:
    """The thread post that asks the team lead to look at a poorly rated ticket."""
    who = f"<@{mention}> " if mention else ""
    text = f"{who}:disappointed: The customer rated *{ticket_id}* {score}/5."
    if comment:
        text += "\n>" + escape(comment).replace("\n", "\n>")
    return text
