"""Which language a new ticket's customer is written to (issue 15). Pure: no I/O beyond the detection model.

The order (shared/i18n.py `choose`): what the customer picked on the page, the channel's hint (browser
Accept-Language on the form and chat, Telegram `language_code`, Slack locale, email Content-Language), the
language of the first message (a classification rule's `set.language`, else py3langid among the desk's
languages and those that have a catalogue), the desk's default (`languages[0]`). The choice is recorded on
`ticket.created` and every later text to the customer uses it, whatever they write next.
"""

from __future__ import annotations

from services.router.detection import Detected, identify
from shared import i18n
from shared.config import DeskConfig
from shared.events import InboundMessage


def catalogue_languages() -> list[str]:
    """The primary languages (ISO 639-1) that have a catalogue: ["en", "zh"]."""
    return list(dict.fromkeys(locale.split("-")[0] for locale in i18n.available()))


def customer_language(
    message: InboundMessage, detected: Detected, ruled_language: str | None, config: DeskConfig
) -> i18n.Chosen:
    """The ticket's customer language; `ruled_language`: the classification's language (a rule may have set it)."""
    written = None
    if i18n.negotiate(message.customer_language) is None and i18n.negotiate(message.language_hint) is None:
        # Detected only when it matters: picked and hinted languages come first.
        ruled = ruled_language if ruled_language and ruled_language != detected.language else None
        written = ruled or _written_in(message, detected, config)
    return i18n.choose(
        picked=message.customer_language, hint=message.language_hint, detected=written, default=config.languages[0]
    )


def _written_in(message: InboundMessage, detected: Detected, config: DeskConfig) -> str | None:
    """The message's language among the desk's and those with a catalogue, so that a language without one
    (Spanish on a desk with en and zh catalogues) is told apart rather than taken for the nearest with one.
    Detection already ran over the same languages when the desk's include every catalogue's."""
    languages = list(dict.fromkeys([*config.languages, *catalogue_languages()]))
    if detected.language_from == "detection" and len(languages) == len(config.languages):
        return detected.language
    return identify(message, languages)
