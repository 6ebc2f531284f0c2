"""Reading a form submission's body (JSON, urlencoded or multipart) into its fields, or field errors.

Text must be UTF-8, as the customer page and any browser showing a UTF-8 page send it (WHATWG HTML,
"Form submission"); bytes that are not are refused by field, never decoded into mojibake. File parts
are refused by name: the web form takes no attachments. Only the body's size is not checked here:
the HTTP layer bounds it (services.intake.body_limit).
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from shared.untrusted import InvalidJson, parse_json_object

# A form has five fields; a thousand is already no form a person filled in.
MAX_FIELDS = 1000

FieldError = dict[str, str]


class FormRefused(Exception):
    """The body cannot be a submission: `status` (415 or 422) and the errors by field."""

    def __init__(self, status: int, errors: list[FieldError]):
        super().__init__(errors)
        self.status = status
        self.errors = errors


def _error(field: str, message: str, kind: str) -> FieldError:
    return {"field": field, "message": message, "type": kind}


async def submitted_fields(content_type: str | None, body: AsyncIterator[bytes]) -> dict[str, Any]:
    """The fields of a submission; raises FormRefused."""
    media_type, options = parse_options_header(content_type or "")
    if media_type == b"application/json":
        try:
            return parse_json_object(await _read(body))
        except InvalidJson as error:
            kind = "object_type" if "expected a JSON object" in str(error) else "json_invalid"
            raise FormRefused(422, [_error("(body)", str(error), kind)]) from None
    if media_type == b"application/x-www-form-urlencoded":
        return _decoded(_urlencoded_pairs(await _read(body)))
    if media_type == b"multipart/form-data":
        return _decoded(await _multipart_pairs(options.get(b"boundary"), body))
    raise FormRefused(
        415,
        [
            _error(
                "(content-type)",
                "send application/json, application/x-www-form-urlencoded or multipart/form-data",
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
        raise FormRefused(422, [_error("(body)", f"more than {MAX_FIELDS} fields", "too_many_fields")]) from None
    return [(name.encode("latin-1"), value.encode("latin-1"), "utf-8") for name, value in pairs]


async def _multipart_pairs(boundary: bytes | None, body: AsyncIterator[bytes]) -> list[tuple[bytes, bytes | None, str]]:
    """(name, value or None for a file part, charset) of every part, in order."""
    if not boundary:
        raise FormRefused(422, [_error("(content-type)", "multipart without a boundary", "multipart_invalid")])
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
            raise FormRefused(422, [_error("(body)", f"more than {MAX_FIELDS} fields", "too_many_fields")])
        disposition = parse_options_header(dict(headers).get(b"content-disposition"))[1]
        if b"name" not in disposition:
            raise FormRefused(422, [_error("(body)", "a part without a name", "multipart_invalid")])
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
        raise FormRefused(422, [_error("(body)", f"invalid multipart body: {error}", "multipart_invalid")]) from None
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
    errors: list[FieldError] = []
    for raw_name, raw_value, charset in pairs:
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            errors.append(_error("(body)", "a field name that is not UTF-8 text", "string_unicode"))
            continue
        if raw_value is None:
            errors.append(_error(name, "attachments are not accepted on this form", "attachment_rejected"))
            continue
        try:
            fields[name] = raw_value.decode(charset)
        except UnicodeDecodeError as error:
            errors.append(
                _error(name, f"not valid {charset} text (byte {error.start} cannot be decoded)", "string_unicode")
            )
    if errors:
        raise FormRefused(422, errors)
    return fields
