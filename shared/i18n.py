"""Message catalogues: everything Switchboard writes by itself, in the reader's language.

Catalogues are gettext `.po` files in Babel's layout, `shared/locales/<locale>/LC_MESSAGES/switchboard.po`
(`zh_Hans` for the tag `zh-Hans`). They are read once per process and compiled in memory
(babel.messages.pofile → babel.messages.mofile → gettext), so an installation needs no compile step and
a `.po` file is the only source. Message IDs are symbolic ("ack.telegram"); `en` is the reference
catalogue and holds every ID, and a text missing from another catalogue falls back to `en`'s (the
unit test `test_i18n.py` fails when one is missing). Plurals follow each catalogue's `Plural-Forms`.

Locales are BCP 47 tags as browsers send them ("en", "zh-Hans"); `negotiate` maps any tag or
`Accept-Language` header to the best catalogue ("zh-CN" → "zh-Hans"), `reader_locale` picks the language of
one page or answer (explicit choice, Accept-Language, the desk's default), `choose` a ticket's language from
what is known about the customer.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import Locale, UnknownLocaleError, get_global
from babel.dates import format_datetime as babel_format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

LOCALES_DIR = Path(__file__).with_name("locales")
DOMAIN = "switchboard"
REFERENCE = "en"
# An Accept-Language header names a handful of languages; more is no browser.
MAX_ACCEPTED = 20


def _folder(locale: str) -> str:
    return locale.replace("-", "_")


def _tag(folder: str) -> str:
    return folder.replace("_", "-")


@functools.cache
def available() -> tuple[str, ...]:
    """The locales with a catalogue, `en` first: ("en", "zh-Hans")."""
    found = sorted(
        _tag(path.parent.parent.name) for path in LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po") if path.is_file()
    )
    return tuple(sorted(found, key=lambda tag: tag != REFERENCE))


@functools.cache
def catalogue(locale: str) -> Catalog:
    """The parsed `.po` file of `locale` (one of `available()`). Errors: OSError, babel's PoFileError."""
    path = LOCALES_DIR / _folder(locale) / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as file:
        return read_po(file, locale=_folder(locale), domain=DOMAIN, abort_invalid=True)


@functools.cache
def _translations(locale: str) -> Translations:
    compiled = io.BytesIO()
    write_mo(compiled, catalogue(locale))
    compiled.seek(0)
    translations = Translations(compiled, domain=DOMAIN)
    if locale != REFERENCE:
        translations.add_fallback(_translations(REFERENCE))
    return translations


@functools.cache
def _plural_ids() -> dict[str, str]:
    """Singular ID → plural ID of the reference catalogue's plural messages."""
    return {message.id[0]: message.id[1] for message in catalogue(REFERENCE) if isinstance(message.id, tuple)}


def load_catalogues() -> None:
    """Reads and compiles every catalogue now, rather than for the first text of each language."""
    for locale in available():
        _translations(locale)


@dataclass(frozen=True)
class Texts:
    """The texts of one locale: `texts("zh-Hans")("ack.telegram", ticket_id="SB-1")`.

    Fields fill `{name}` placeholders (str.format). An ID no catalogue has comes back as itself."""

    locale: str

    def __call__(self, key: str, /, **fields: object) -> str:
        text = _translations(self.locale).gettext(key)
        return text.format(**self._numbers(fields)) if fields else text

    def plural(self, key: str, count: int, /, **fields: object) -> str:
        """The form of a plural message for `count` (also filled in as `{count}`)."""
        plural_id = _plural_ids().get(key, key)
        text = _translations(self.locale).ngettext(key, plural_id, count)
        return text.format(**self._numbers({"count": count, **fields}))

    def _numbers(self, fields: dict[str, object]) -> dict[str, object]:
        """Whole numbers written as the language writes them ("2,000")."""
        return {
            name: format_decimal(value, locale=_folder(self.locale))
            if isinstance(value, int) and not isinstance(value, bool)
            else value
            for name, value in fields.items()
        }

    def plural_forms(self, key: str) -> dict[str, str]:
        """A plural message's unfilled form per CLDR plural category ("one", "other"), for the browser's
        Intl.PluralRules: each category's form is the one gettext picks for a number of that category."""
        rule = Locale.parse(_folder(self.locale)).plural_form
        forms: dict[str, str] = {}
        for number in range(0, 200):
            category = rule(number)
            if category not in forms:
                forms[category] = _translations(self.locale).ngettext(key, _plural_ids().get(key, key), number)
        return forms

    @property
    def name(self) -> str:
        """The language's own name for itself ("English", "中文 (简体)")."""
        return Locale.parse(_folder(self.locale)).get_display_name() or self.locale


@functools.cache
def messages(locale: str) -> dict[str, str | dict[str, str]]:
    """Every message of `locale` (the reference's IDs, unfilled): its text, or a plural's forms by CLDR
    category (`Texts.plural_forms`); for the browser."""
    texts = Texts(locale)
    ids = [message.id[0] if isinstance(message.id, tuple) else message.id for message in catalogue(REFERENCE)]
    return {key: texts.plural_forms(key) if key in _plural_ids() else texts(key) for key in ids if key}


# Bounded: callers may pass what a customer's browser sent.
@functools.lru_cache(maxsize=256)
def texts(locale: str | None) -> Texts:
    """The texts of `locale` when it has a catalogue, else of the best match (`negotiate`), else `en`'s."""
    return Texts(negotiate(locale) or REFERENCE)


def _language_and_script(locale: Locale) -> tuple[str, str | None]:
    """A locale's language and script, the script inferred where not given ("zh-CN" → Hans, "zh-TW" → Hant;
    CLDR likely subtags)."""
    if locale.script:
        return locale.language, locale.script
    likely = get_global("likely_subtags")
    for key in (f"{locale.language}_{locale.territory}" if locale.territory else None, locale.language):
        if key and key in likely:
            parts = likely[key].split("_")
            if len(parts) >= 3:
                return locale.language, parts[1]
    if locale.territory and f"und_{locale.territory}" in likely:
        parts = likely[f"und_{locale.territory}"].split("_")
        if parts[0] == locale.language and len(parts) >= 3:
            return locale.language, parts[1]
    return locale.language, None


def _parse(tag: str) -> Locale | None:
    try:
        return Locale.parse(tag.strip().replace("_", "-"), sep="-")
    except (ValueError, TypeError, UnknownLocaleError):
        return None


def accepted(header: str | None) -> list[str]:
    """The tags of an `Accept-Language` header (RFC 9110 §12.5.4) or a single tag, best first; "*" and q=0
    are left out."""
    if not header:
        return []
    weighted = []
    for index, part in enumerate(header.split(",")[:MAX_ACCEPTED]):
        tag, _, parameters = part.partition(";")
        tag, quality = tag.strip(), 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


def hint(header: str | None) -> str | None:
    """A browser's language hint from its `Accept-Language`: the best tag that has a catalogue, else its first
    tag (detection's hint may still use it), else None; at most 64 characters."""
    tags = accepted(header)
    best = next((tag for tag in tags if negotiate(tag)), tags[0] if tags else None)
    return best[:64] if best else None


def negotiate(header: str | None, locales: Iterable[str] | None = None) -> str | None:
    """The catalogue (of `locales`, default `available()`) that best serves a BCP 47 tag or an
    `Accept-Language` header, or None. Per tag, best first: same language and script, then same language
    ("zh-TW" with no zh-Hant catalogue gets zh-Hans rather than nothing)."""
    return _negotiate(header, tuple(locales) if locales is not None else None)


# The router negotiates several tags per new ticket, and Babel's parsing costs tens of µs a tag; the tags
# seen repeat (browsers' and apps' few languages), and the catalogues are fixed for the process's life.
@functools.lru_cache(maxsize=4096)
def _negotiate(header: str | None, locales: tuple[str, ...] | None) -> str | None:
    offered = [(locale, parsed) for locale in (locales or available()) if (parsed := _parse(locale)) is not None]
    keyed = [(locale, _language_and_script(parsed)) for locale, parsed in offered]
    for tag in accepted(header):
        wanted = _parse(tag)
        if wanted is None:
            continue
        language, script = _language_and_script(wanted)
        same_script = [locale for locale, key in keyed if key == (language, script)]
        same_language = [locale for locale, key in keyed if key[0] == language]
        if found := same_script or same_language:
            return found[0]
    return None


def reader_locale(
    *, picked: str | None, accept_language: str | None, desk_locale: str, then: Iterable[str | None] = ()
) -> str:
    """The catalogue a reader of a page, an API answer or a refusal is served in (issue 15), the first that
    has one of: what they picked (a `?lang=` parameter, a form's `language` field, the chat's
    `hello.language`), their browser's Accept-Language header, the tags of `then` in order (a page's own
    further hints, e.g. a help-centre article's language), the desk's default (`DeskConfig.desk_locale`);
    none has one: `en`. Always one of `available()`. Pure.

    Not for a ticket's language, which is chosen once when it opens (`choose`)."""
    for tag in (picked, accept_language, *then, desk_locale):
        if (locale := negotiate(tag)) is not None:
            return locale
    offered = available()
    return REFERENCE if REFERENCE in offered else offered[0]


def reader_texts(
    *, picked: str | None, accept_language: str | None, desk_locale: str, then: Iterable[str | None] = ()
) -> Texts:
    """The texts of `reader_locale` (same arguments)."""
    return texts(reader_locale(picked=picked, accept_language=accept_language, desk_locale=desk_locale, then=then))


LanguageSource = Literal["picked", "hint", "detection", "default"]


@dataclass(frozen=True)
class Chosen:
    locale: str
    source: LanguageSource


def choose(
    *,
    picked: str | None,
    hint: str | None,
    detected: str | None,
    default: str,
    locales: Iterable[str] | None = None,
) -> Chosen:
    """The language a ticket's customer is written to (issue 15), the first that has a catalogue of:
    what the customer picked (the page's language switch), the channel's hint (Accept-Language, Telegram
    `language_code`, Slack locale, email Content-Language), the language detected from the first message,
    the desk's default; none has one: `en`. Pure."""
    offered = tuple(locales or available())
    for source, tag in (("picked", picked), ("hint", hint), ("detection", detected), ("default", default)):
        if (locale := negotiate(tag, offered)) is not None:
            return Chosen(locale, source)  # type: ignore[arg-type]
    return Chosen(REFERENCE if REFERENCE in offered else offered[0], "default")


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA time zone `name` (the customer's, from their browser), or None when unknown or not given."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def format_datetime(moment: datetime, locale: str | None, timezone: str | None) -> str:
    """`moment` as a reader of `locale` writes a date and time, in `timezone` (IANA) when known, else UTC
    and saying so."""
    where = zone(timezone)
    folder = _folder(texts(locale).locale)
    shown = babel_format_datetime(moment, "medium", tzinfo=where or ZoneInfo("UTC"), locale=folder)
    return shown if where else f"{shown} UTC"
