"""The "this solved it" link under suggested articles: a signed token names the ticket (valid 14 days).

Signed like the CSAT links (shared/signed_links.py over the same secret, another salt), so the page
needs no lookup and a guessed URL solves nothing. Confirming publishes the customer's `command.set_status`
to solved with reason "deflected" (services/knowledge/articles.py DEFLECTED): reports count it as a
deflection, and the customer is not asked for a rating.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.knowledge.articles import DEFLECTED
from shared.csat import csat_secret
from shared.events import SetStatus
from shared.ids import derived_id
from shared.settings import Settings
from shared.signed_links import SignedTokens

_SALT = "switchboard.deflection.v1"
DEFLECTION_PATH = "/kb/solved/{token}"


def _ticket_id(payload: Any) -> str:
    if not isinstance(payload, str):
        raise TypeError("a deflection token names a ticket ID")
    return payload


class DeflectionTokens(SignedTokens[str]):
    """Payload: the ticket ID; `read` raises shared.signed_links.InvalidToken."""

    def __init__(self, secret: str):
        super().__init__(secret, salt=_SALT, link="link", dump=lambda ticket_id: ticket_id, load=_ticket_id)


def deflection_url(base_url: str, tokens: DeflectionTokens, ticket_id: str) -> str:
    return base_url.rstrip("/") + DEFLECTION_PATH.format(token=tokens.issue(ticket_id))


def help_centre_links(settings: Settings) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """An article's public URL by slug, and a ticket's "this solved it" URL by ticket ID."""
    base_url = settings.public_base_url()
    tokens = DeflectionTokens(csat_secret(settings))
    return (lambda slug: f"{base_url}/kb/{slug}"), (lambda ticket_id: deflection_url(base_url, tokens, ticket_id))


def deflected_command(ticket_id: str, now: datetime) -> SetStatus:
    """The customer's "solved" (one command ID per ticket: confirming twice is applied once)."""
    return SetStatus(
        event_id=derived_id("deflected", ticket_id),
        occurred_at=now,
        ticket_id=ticket_id,
        agent_id="customer",
        status="solved",
        reason=DEFLECTED,
    )
