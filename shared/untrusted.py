"""Reading what a client sent: JSON and secrets, turned into a value or a clear refusal.

Any bytes may reach a public endpoint. These helpers never let them crash something deeper in
(`RecursionError` from nesting, `TypeError` from comparing non-ASCII text ...): every endpoint uses
them instead of `json.loads` and `hmac.compare_digest` on text.
"""

from __future__ import annotations

import hmac
from typing import Any

from pydantic_core import from_json


class InvalidJson(ValueError):
    """Not JSON (RFC 8259), not UTF-8, nested deeper than 200 levels, or not the JSON type expected.

    `reason`: the parser's words, when it is no JSON; `json_type`: the type it is ("array", "string",
    "boolean", "null", "number"), when it is JSON of another type than expected."""

    def __init__(self, message: str, *, reason: str | None = None, json_type: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.json_type = json_type


def parse_json(data: bytes | str) -> Any:
    """The JSON value of `data`; raises InvalidJson, whose message says where and why.

    pydantic-core's parser (jiter) refuses nesting deeper than 200 levels, lone UTF-16 surrogates and
    NaN/Infinity, so what it returns can be validated, serialised and sent to Kafka without surprises.
    """
    try:
        return from_json(data, allow_inf_nan=False, cache_strings=False)
    except ValueError as error:
        raise InvalidJson(f"invalid JSON: {error}", reason=str(error)) from None


def parse_json_object(data: bytes | str) -> dict[str, Any]:
    """Like `parse_json`, for endpoints whose body must be a JSON object."""
    value = parse_json(data)
    if not isinstance(value, dict):
        json_type = _json_type(value)
        raise InvalidJson(f"expected a JSON object, got {_WITH_ARTICLE[json_type]}", json_type=json_type)
    return value


def same_secret(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time comparison of a secret a client sent (any characters) with ours.

    Byte-wise: `hmac.compare_digest` raises TypeError for text with non-ASCII characters, and
    HTTP header values may hold any byte (Starlette decodes them as Latin-1).
    """
    return hmac.compare_digest(_as_bytes(given), _as_bytes(expected))


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


_WITH_ARTICLE = {
    "array": "an array",
    "string": "a string",
    "boolean": "a boolean",
    "null": "null",
    "number": "a number",
}


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
