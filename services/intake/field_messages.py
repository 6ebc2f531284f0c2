"""Field errors in the customer's language: pydantic's errors become `{"field", "message", "type"}` with the
message from the catalogue (`error.*`, shared/locales) and `type` kept as pydantic's machine-readable code.

The language: what the customer picked on the page (the submission's `language`), else the browser's
Accept-Language, else the desk's default (`locale_of`, on `shared/i18n.py` `reader_locale`); the form's other
refusals (429, spam checks, captcha provider down) are in it too.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from shared import i18n

FIELD_OF_BODY = "(body)"


def locale_of(fields: dict[str, Any], accept_language: str | None, desk_locale: str) -> str:
    """The language to answer a submission in: its `language` field, else Accept-Language, else the desk's;
    a catalogue's locale. `fields` are as submitted, not yet validated (a `language` that is no string is
    ignored)."""
    picked = fields.get("language")
    return i18n.reader_locale(
        picked=picked if isinstance(picked, str) else None, accept_language=accept_language, desk_locale=desk_locale
    )


def header_texts(request: Request, desk_locale: str) -> i18n.Texts:
    """The reader's language when only the headers are read yet: Accept-Language, else the desk's default."""
    return i18n.reader_texts(
        picked=None, accept_language=request.headers.get("accept-language"), desk_locale=desk_locale
    )


def page_texts(request: Request, desk_locale: str, then: tuple[str | None, ...] = ()) -> i18n.Texts:
    """A page's language: `?lang=` (a link we sent names the ticket's), else Accept-Language, else the tags of
    `then`, else the desk's default."""
    return i18n.reader_texts(
        picked=request.query_params.get("lang"),
        accept_language=request.headers.get("accept-language"),
        desk_locale=desk_locale,
        then=then,
    )


def message_for(detail: Any, texts: i18n.Texts) -> str:
    """One pydantic error detail in words for the customer."""
    field = str(detail["loc"][0]) if detail["loc"] else ""
    kind = detail["type"]
    context = detail.get("ctx") or {}
    if kind in ("missing", "string_too_short"):
        return texts("error.required")
    if kind == "string_too_long":
        return texts.plural("error.max_length", int(context.get("max_length", 0)))
    if kind == "extra_forbidden":
        return texts("error.unknown_field")
    if field == "email":
        return texts("error.email")
    if field == "phone":
        return texts("error.phone")
    if field == "language":
        return texts("error.language")
    return texts("error.invalid")


def field_errors(error: ValidationError, locale: str) -> list[dict[str, str]]:
    """pydantic's errors as the form's field errors, in `locale`: `[{"field", "message", "type"}]`."""
    texts = i18n.texts(locale)
    return [
        {
            "field": ".".join(str(part) for part in detail["loc"]) or FIELD_OF_BODY,
            "message": message_for(detail, texts),
            "type": detail["type"],
        }
        for detail in error.errors()
    ]
