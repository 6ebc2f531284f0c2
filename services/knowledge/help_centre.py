"""The public help centre on intake-http, and the knowledge base's import there.

- `GET /v1/kb/search?q=…[&language=xx]` → `{"results": [{"slug", "title", "language", "score", "url"}…]}`,
  best first (SPEC §2): with `language`, that language's articles only; without, the query's language
  (services/router/detection.py `text_language`, among the desk's and the articles' languages) first.
- `GET /kb` (every article, or `?q=` search results), `GET /kb/{slug}` (the article, rendered).
- `GET|POST /kb/solved/{token}`: "this solved it" under suggested articles (services/knowledge/deflection.py).

Pages are in the customer's language (issue 15): the help centre's `?lang=`, else the browser's Accept-Language,
else (an article) the article's language, else the desk's default; the "this solved it" pages the ticket's
customer language (the read model), else `?lang=` (the link names it), else Accept-Language, else the default.

Articles come from the Redis projection of the articles topic (services/knowledge/store.py), searched
through an index rebuilt only when they changed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from services.intake.core import PUBLISH_TIMEOUT_SECONDS, Intake
from services.intake.csat_page import PAGE_HEADERS
from services.intake.field_messages import page_texts
from services.intake.guard import PublicGuard
from services.knowledge.deflection import DEFLECTION_PATH, DeflectionTokens, deflected_command
from services.knowledge.pages import article_page, deflection_page, index_page, not_found_page, problem_page
from services.knowledge.search import Hit, KnowledgeIndex
from services.knowledge.store import ArticleStore, KnowledgeCache
from services.router.detection import primary_language, text_language
from shared import i18n
from shared.csat import csat_secret
from shared.publisher import Outgoing
from shared.read_model import ticket_key
from shared.signed_links import InvalidToken
from shared.topics import COMMANDS, Topics

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500
MAX_RESULTS = 10


def search(index: KnowledgeIndex | None, query: str, language: str | None, desk_languages: list[str]) -> list[Hit]:
    """The articles matching `query`, best first (see the module's docstring)."""
    if index is None or not query.strip():
        return []
    if language:
        return index.search(query, language, only_language=True, limit=MAX_RESULTS)
    candidates = list(dict.fromkeys([*desk_languages, *index.languages]))
    return index.search(query, text_language(query, candidates), limit=MAX_RESULTS)


def help_centre_routes(intake: Intake, guard: PublicGuard | None = None) -> APIRouter:
    """The help centre's routes; with `guard`, searches and "this solved it" posts are rate limited
    (`limits.kb`: 429 with Retry-After)."""
    router = APIRouter()
    store = ArticleStore(intake.redis)
    cache = KnowledgeCache(intake.redis)
    base_url = intake.settings.public_base_url()
    tokens = DeflectionTokens(csat_secret(intake.settings))
    commands_topic = Topics(intake.settings.topic_prefix).name(COMMANDS)
    languages = intake.config.languages

    def html(content: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(content, status_code=status, headers=PAGE_HEADERS)

    def texts_for(request: Request, *fallbacks: str | None) -> i18n.Texts:
        """`?lang=`, else Accept-Language, else the first of `fallbacks` with a catalogue, else the desk's default."""
        return page_texts(request, intake.config.desk_locale, then=fallbacks)

    def kept(request: Request) -> str | None:
        """The catalogue the reader asked for with `?lang=`, kept on the help centre's links."""
        return i18n.negotiate(request.query_params.get("lang"))

    async def ticket_texts(request: Request, ticket_id: str | None) -> i18n.Texts:
        """The ticket's customer language when the read model has one, else as `texts_for`."""
        language = await intake.redis.hget(ticket_key(ticket_id), "customer_language") if ticket_id else None
        if found := i18n.negotiate(language):
            return i18n.texts(found)
        return texts_for(request)

    async def within_limits(request: Request) -> None:
        """Raises HTTPException 429 (with Retry-After) past `limits.kb` (issue #16)."""
        if guard is None:
            return
        client = guard.client(request.client.host if request.client else None, request.headers)
        if limited := await guard.limit("kb", client):
            raise HTTPException(status_code=429, detail=limited.message(texts_for(request)), headers=limited.headers())

    @router.get("/v1/kb/search")
    async def kb_search(
        request: Request,
        q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)] = "",
        language: Annotated[str | None, Query(max_length=35)] = None,
    ) -> dict[str, Any]:
        """Knowledge-base articles matching `q`, best first; 429 past `limits.kb`."""
        await within_limits(request)
        hits = search(await cache.index(), q, primary_language(language), languages)
        return {
            "results": [
                {
                    "slug": hit.slug,
                    "title": hit.title,
                    "language": hit.language,
                    "score": hit.score,
                    "url": f"{base_url}/kb/{hit.slug}",
                }
                for hit in hits
            ]
        }

    @router.get("/kb", include_in_schema=False)
    async def kb_index(request: Request, q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)] = "") -> HTMLResponse:
        if q.strip():
            await within_limits(request)
        hits = search(await cache.index(), q, None, languages) if q.strip() else None
        return html(index_page(await store.articles(), texts_for(request), q, hits, kept(request)))

    @router.get("/kb/{slug}", include_in_schema=False)
    async def kb_article(slug: str, request: Request) -> HTMLResponse:
        article = await store.get(slug)
        if article is None:
            return html(not_found_page(texts_for(request), kept(request)), 404)
        return html(article_page(article, texts_for(request, article.language), kept(request)))

    async def ticket_of(token: str, request: Request) -> tuple[str, i18n.Texts] | Response:
        """The token's ticket and the page's texts, or the page saying why the link is no good."""
        try:
            ticket_id = tokens.read(token)
        except InvalidToken as invalid:
            texts = texts_for(request)
            if invalid.expired:
                return html(problem_page(texts("kb.link.expired"), texts("kb.link.expired_advice"), texts), 410)
            return html(problem_page(texts("kb.link.invalid"), texts("kb.link.invalid_advice"), texts), 404)
        return ticket_id, await ticket_texts(request, ticket_id)

    @router.get(DEFLECTION_PATH, include_in_schema=False)
    async def deflection_form(token: str, request: Request) -> Response:
        found = await ticket_of(token, request)
        return found if isinstance(found, Response) else html(deflection_page(*found))

    @router.post(DEFLECTION_PATH, include_in_schema=False)
    async def deflect(token: str, request: Request) -> Response:
        await within_limits(request)
        found = await ticket_of(token, request)
        if isinstance(found, Response):
            return found
        ticket_id, texts = found
        command = deflected_command(ticket_id, datetime.now(UTC))
        try:
            await intake.publisher.publish(
                Outgoing.event(commands_topic, ticket_id, command), timeout=PUBLISH_TIMEOUT_SECONDS
            )
        except KafkaError as error:
            logger.error("deflection not published", extra={"ticket_id": ticket_id, "error": repr(error)})
            return html(problem_page(texts("kb.retry.title"), texts("kb.retry.advice"), texts), 503)
        logger.info("ticket deflected by an article", extra={"ticket_id": ticket_id})
        return html(deflection_page(ticket_id, texts, done=True))

    return router
