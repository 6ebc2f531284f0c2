"""Suggested articles for a new ticket (issue #13), in pure code: the knowledge base's best matches of its
subject and opening message, in the ticket's language.

At most `knowledge_base.suggestions` articles scoring `knowledge_base.suggest_at` or more (BM25,
services/knowledge/search.py), as one `ticket.suggestions` event after the ticket's own; none when nothing
scores enough or the knowledge base is empty. The index is built once per change of the knowledge base
(services/knowledge/store.py KnowledgeCache), not per ticket.
"""

from __future__ import annotations

from datetime import datetime

from services.knowledge.search import KnowledgeIndex
from shared.config import DeskConfig
from shared.events import ArticleSuggestion, InboundMessage, TicketCreated, TicketSuggestions
from shared.ids import derived_id


def suggested(
    message: InboundMessage, created: TicketCreated, index: KnowledgeIndex | None, config: DeskConfig, now: datetime
) -> TicketSuggestions | None:
    """The articles that may answer the ticket `created` opened by `message`, or None."""
    settings = config.knowledge_base
    if index is None or not settings.suggestions or created.merged_into:
        return None
    language = created.language or config.languages[0]
    hits = index.search(
        f"{message.subject or ''}\n{message.text}",
        language,
        only_language=True,
        limit=settings.suggestions,
        min_score=settings.suggest_at,
    )
    if not hits:
        return None
    route = created.reply_route
    # A form ticket is answered by email: either names the channel in the config.
    channels = {created.channel, route.channel} if route is not None else set()
    deflect = route is not None and created.acknowledge and bool(channels & set(settings.deflect_channels))
    return TicketSuggestions(
        event_id=derived_id(message.message_id, "suggestions"),
        occurred_at=now,
        ticket_id=created.ticket_id,
        correlation_id=str(message.message_id),
        traceparent=message.traceparent,
        articles=[
            ArticleSuggestion(slug=hit.slug, title=hit.title, language=hit.language, score=hit.score) for hit in hits
        ],
        deflect_route=route if deflect else None,
    )
