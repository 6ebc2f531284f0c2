"""Deciding a new ticket's team, category, priority and tags."""

from __future__ import annotations

from shared.config import Classification, DeskConfig
from shared.events import InboundMessage


def classify(message: InboundMessage, config: DeskConfig) -> Classification:
    """A form bound to a team sends its tickets there; everything else gets the default."""
    default = config.default_classification
    if message.channel == "form" and (form := config.form(message.source)) and form.team:
        return default.model_copy(update={"team": form.team})
    return default
