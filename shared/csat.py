"""CSAT links: a signed token names the ticket and the resolution to be rated, valid for 14 days.

The token is signed with `SWITCHBOARD_CSAT_SECRET` (itsdangerous, HMAC-SHA1 over a timestamped
payload), so the rating page needs no lookup to know what it rates and a guessed URL rates nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from shared.settings import Settings

TOKEN_VALID_SECONDS = 14 * 24 * 3600
_SALT = "switchboard.csat.v1"
_SECRET_FILE = "csat-secret"


@dataclass(frozen=True)
class CsatSubject:
    """What a token lets the customer rate: one resolution of one ticket."""

    ticket_id: str
    resolution: int


class InvalidToken(ValueError):
    """The token is forged, damaged or older than 14 days; `expired` tells the two apart."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


def csat_secret(settings: Settings) -> str:
    """The configured secret, or one generated once and kept under DATA_DIR (mode 0600)."""
    if settings.csat_secret is not None:
        return settings.csat_secret.get_secret_value()
    path = settings.data_dir / _SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_suffix(f".{secrets.token_hex(4)}")
        candidate.write_text(secrets.token_urlsafe(32))
        candidate.chmod(0o600)
        # Two processes starting at once: the first rename wins, both then read the same file.
        if not path.exists():
            candidate.replace(path)
        else:
            candidate.unlink()
    return path.read_text().strip()


class CsatTokens:
    def __init__(self, secret: str):
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)

    def issue(self, subject: CsatSubject) -> str:
        return self._serializer.dumps([subject.ticket_id, subject.resolution])

    def read(self, token: str, *, max_age: int = TOKEN_VALID_SECONDS) -> CsatSubject:
        """The subject of a token; raises InvalidToken when it is forged, damaged or expired."""
        try:
            ticket_id, resolution = self._serializer.loads(token, max_age=max_age)
        except SignatureExpired as error:
            raise InvalidToken("this rating link has expired", expired=True) from error
        except (BadSignature, ValueError, TypeError) as error:
            raise InvalidToken("this rating link is not valid") from error
        if not isinstance(ticket_id, str) or not isinstance(resolution, int):
            raise InvalidToken("this rating link is not valid")
        return CsatSubject(ticket_id, resolution)


def csat_url(settings: Settings, tokens: CsatTokens, subject: CsatSubject) -> str:
    return f"{settings.public_base_url()}/v1/csat/{tokens.issue(subject)}"
