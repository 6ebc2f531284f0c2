"""Reading a form submission's body (JSON, urlencoded or multipart) into its fields, or field errors.

Text must be UTF-8, as the customer page and any browser showing a UTF-8 page send it (WHATWG HTML,
"Form submission"); bytes that are not are refused by field, never decoded into mojibake. File parts
are refused by name: the web form takes no attachments. Only the body's size is not checked here:
the HTTP layer bounds it (services.intake.body_limit).

Refusals name their messages (`refusal.body.*`) and are worded when answered (`FormRefused.errors`), in the
reader's language: a body that cannot be read has no `language` field, so the caller picks it from the
headers.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from shared import i18n
from shared.untrusted import InvalidJson, parse_json_object

# A form has five fields; a thousand is already no form a person filled in.
MAX_FIELDS = 1000

FieldError = dict[str, str]


@dataclass(frozen=True)
class Problem:
    """One refused field: its name, the message ID and fields of why, the machine-readable `type`."""

    field: str
    text_id: str
    kind: str
    fields: tuple[tuple[str, object], ...] = ()


class FormRefused(Exception):
    """The body cannot be a submission: `status` (415 or 422) and the problems by field."""

    def __init__(self, status: int, problems: list[Problem]):
        super().__init__([problem.text_id for problem in problems])
        self.status = status
        self.problems = problems

    def errors(self, texts: i18n.Texts) -> list[FieldError]:
        """The problems as the API answers them: `[{"field", "message", "type"}]`, worded in `texts`."""
        return [
            {"field": problem.field, "message": texts(problem.text_id, **dict(problem.fields)), "type": problem.kind}
            for problem in self.problems
        ]


def _error(field: str, text_id: str, kind: str, **fields: object) -> Problem:
    return Problem(field, text_id, kind, tuple(fields.items()))


# A string: the count as the limit is configured, not as a language groups digits.
_TOO_MANY_FIELDS = _error("(body)", "refusal.body.too_many_fields", "too_many_fields", limit=str(MAX_FIELDS))


async def submitted_fields(content_type: str | None, body: AsyncIterator[bytes]) -> dict[str, Any]:
    """The fields of a submission; raises FormRefused."""
    media_type, options = parse_options_header(content_type or "")
    if media_type == b"application/json":
        try:
            return parse_json_object(await _read(body))
        except InvalidJson as error:
            if error.json_type is not None:
                problem = _error("(body)", "refusal.body.not_an_object", "object_type", json_type=error.json_type)
            else:
                problem = _error("(body)", "refusal.body.json_invalid", "json_invalid", reason=error.reason or "")
            raise FormRefused(422, [problem]) from None
    if media_type == b"application/x-www-form-urlencoded":
        return _decoded(_urlencoded_pairs(await _read(body)))
    if media_type == b"multipart/form-data":
        return _decoded(await _multipart_pairs(options.get(b"boundary"), body))
    raise FormRefused(
        415,
        [
            _error(
                "(content-type)",
                "refusal.body.media_type",
                "unsupported_media_type",
            )
        ],
    )


async def _read(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in body])


def _urlencoded_pairs(body: bytes) -> list[tuple[bytes, bytes | None, str]]:
    # Latin-1 maps bytes to characters one to one: decoding the percent-escapes as Latin-1 and
    # encoding back yields exactly the bytes sent, which are then decoded as UTF-8, strictly.
    try:
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1", max_num_fields=MAX_FIELDS)
    except ValueError:
        raise FormRefused(422, [_TOO_MANY_FIELDS]) from None
    return [(name.encode("latin-1"), value.encode("latin-1"), "utf-8") for name, value in pairs]


async def _multipart_pairs(boundary: bytes | None, body: AsyncIterator[bytes]) -> list[tuple[bytes, bytes | None, str]]:
    """(name, value or None for a file part, charset) of every part, in order."""
    if not boundary:
        raise FormRefused(422, [_error("(content-type)", "refusal.body.no_boundary", "multipart_invalid")])
    parts: list[tuple[bytes, bytes | None, str]] = []
    headers: list[tuple[bytes, bytes]] = []
    header_name, header_value = bytearray(), bytearray()
    data = bytearray()

    def on_part_begin() -> None:
        headers.clear()
        data.clear()

    def on_header_field(chunk: bytes, start: int, end: int) -> None:
        header_name.extend(chunk[start:end])

    def on_header_value(chunk: bytes, start: int, end: int) -> None:
        header_value.extend(chunk[start:end])

    def on_header_end() -> None:
        headers.append((bytes(header_name).lower(), bytes(header_value)))
        header_name.clear()
        header_value.clear()

    def on_part_data(chunk: bytes, start: int, end: int) -> None:
        # File contents are never kept: the part is refused by name.
        if not _is_file(headers):
            data.extend(chunk[start:end])

    def on_part_end() -> None:
        if len(parts) >= MAX_FIELDS:
            raise FormRefused(422, [_TOO_MANY_FIELDS])
        disposition = parse_options_header(dict(headers).get(b"content-disposition"))[1]
        if b"name" not in disposition:
            raise FormRefused(422, [_error("(body)", "refusal.body.unnamed_part", "multipart_invalid")])
        charset = parse_options_header(dict(headers).get(b"content-type"))[1].get(b"charset", b"utf-8")
        parts.append((disposition[b"name"], None if _is_file(headers) else bytes(data), _codec(charset)))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except FormParserError as error:
        problem = _error("(body)", "refusal.body.multipart", "multipart_invalid", reason=str(error))
        raise FormRefused(422, [problem]) from None
    return parts


def _is_file(headers: list[tuple[bytes, bytes]]) -> bool:
    return b"filename" in parse_options_header(dict(headers).get(b"content-disposition"))[1]


def _codec(charset: bytes) -> str:
    try:
        name = codecs.lookup(charset.decode("ascii")).name
        "".encode(name)  # LookupError for codecs that are no text encoding (rot13, zlib ...)
        return name
    except (UnicodeDecodeError, LookupError):
        # An unknown label cannot be honoured; UTF-8 is what the form was served in.
        return "utf-8"


def _decoded(pairs: list[tuple[bytes, bytes | None, str]]) -> dict[str, Any]:
    """Field values as text (the last value of a repeated name wins); raises FormRefused."""
    fields: dict[str, str] = {}
    errors: list[Problem] = []
    for raw_name, raw_value, charset in pairs:
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            errors.append(_error("(body)", "refusal.body.name_not_utf8", "string_unicode"))
            continue
        if raw_value is None:
            errors.append(_error(name, "refusal.body.attachment", "attachment_rejected"))
            continue
        try:
            fields[name] = raw_value.decode(charset)
        except UnicodeDecodeError as error:
            errors.append(
                _error(name, "refusal.body.not_text", "string_unicode", charset=charset, byte=str(error.start))
            )
    if errors:
        raise FormRefused(422, errors)
    return fields
