"""Signed tokens for links sent to customers (CSAT ratings, "this solved it"), valid for 14 days.

A token is itsdangerous' URL-safe timed serialization (JSON payload, timestamp, HMAC-SHA1) under a salt of
its own per kind of link, so a page needs no lookup to know what the link names, a guessed URL names
nothing, and a token of one kind is no token of another even over the same secret. The format is that of
the links already sent: changing the salt or the payload's JSON shape invalidates them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

TOKEN_VALID_SECONDS = 14 * 24 * 3600

Subject = TypeVar("Subject")


class InvalidToken(ValueError):
    """The token is forged, damaged or older than its validity; `expired` tells the two apart."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


class SignedTokens(Generic[Subject]):
    """Tokens naming a subject: `dump` turns it into the JSON payload, `load` back (raising ValueError or
    TypeError on a payload of another shape); `link` names the link in InvalidToken's message."""

    def __init__(
        self,
        secret: str,
        *,
        salt: str,
        link: str,
        dump: Callable[[Subject], Any],
        load: Callable[[Any], Subject],
    ):
        self._serializer = URLSafeTimedSerializer(secret, salt=salt)
        self._link = link
        self._dump = dump
        self._load = load

    def issue(self, subject: Subject) -> str:
        return self._serializer.dumps(self._dump(subject))

    def read(self, token: str, *, max_age: int = TOKEN_VALID_SECONDS) -> Subject:
        """The subject of a token (`max_age` in seconds); raises InvalidToken when it is forged, damaged,
        of another shape or expired."""
        try:
            return self._load(self._serializer.loads(token, max_age=max_age))
        except SignatureExpired as error:
            raise InvalidToken(f"this {self._link} has expired", expired=True) from error
        except (BadSignature, ValueError, TypeError) as error:
            raise InvalidToken(f"this {self._link} is not valid") from error
