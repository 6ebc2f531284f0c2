"""CSAT links: a signed token names the ticket and the resolution to be rated, valid for 14 days.

The token is signed with `SWITCHBOARD_CSAT_SECRET` (shared/signed_links.py: itsdangerous, HMAC-SHA1 over a
timestamped payload), so the rating page needs no lookup to know what it rates and a guessed URL rates nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from shared.settings import Settings
from shared.signed_links import SignedTokens

_SALT = "switchboard.csat.v1"
_SECRET_FILE = "csat-secret"


@dataclass(frozen=True)
class CsatSubject:
    """What a token lets the customer rate: one resolution of one ticket."""

    ticket_id: str
    resolution: int


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


def _subject(payload: Any) -> CsatSubject:
    ticket_id, resolution = payload
    if not isinstance(ticket_id, str) or not isinstance(resolution, int):
        raise ValueError("a rating token names a ticket ID and a resolution number")
    return CsatSubject(ticket_id, resolution)


class CsatTokens(SignedTokens[CsatSubject]):
    """Payload `[ticket_id, resolution]`; `read` raises shared.signed_links.InvalidToken."""

    def __init__(self, secret: str):
        super().__init__(
            secret,
            salt=_SALT,
            link="rating link",
            dump=lambda subject: [subject.ticket_id, subject.resolution],
            load=_subject,
        )


def csat_url(settings: Settings, tokens: CsatTokens, subject: CsatSubject) -> str:
    return f"{settings.public_base_url()}/v1/csat/{tokens.issue(subject)}"
