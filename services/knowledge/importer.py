"""Imports the `knowledge_base.path` folder into the articles topic: at start, then on every change.

Each round reads every `*.md` file below the folder (a file that is no article is logged and skipped),
compares with the knowledge base in Redis (services/knowledge/articles.py `import_events`: only new and
changed articles publish, files gone are removed), publishes the events keyed by slug, and applies them
to the projection. The watch (watchfiles) runs a round after each burst of changes and every RESCAN_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import watchfiles

from services.knowledge.articles import Article, ArticleError, import_events, parse_article
from services.knowledge.store import ArticleStore
from shared.events import ArticleEvent
from shared.publisher import Outgoing, Publisher
from shared.tasks import running

logger = logging.getLogger(__name__)

RESCAN_SECONDS = 30
PUBLISH_TIMEOUT_SECONDS = 30.0


def read_folder(folder: Path, default_language: str) -> list[Article]:
    """The articles of every `*.md` file below `folder`, by path; of two with one slug, the first wins."""
    articles: dict[str, Article] = {}
    for path in sorted(folder.rglob("*.md")):
        try:
            article = parse_article(path.stem, path.read_text(encoding="utf-8"), default_language)
        except (ArticleError, OSError, UnicodeDecodeError) as error:
            logger.warning("not an article, skipped", extra={"path": str(path), "error": str(error)})
            continue
        if article.slug in articles:
            logger.warning("two articles with one slug; the first is kept", extra={"path": str(path)})
            continue
        articles[article.slug] = article
    return list(articles.values())


class ArticleImporter:
    def __init__(self, folder: Path, default_language: str, store: ArticleStore, publisher: Publisher, topic: str):
        self.folder = folder
        self.default_language = default_language
        self.store = store
        self.publisher = publisher
        self.topic = topic

    async def import_folder(self) -> list[ArticleEvent]:
        """One round; returns the events it published (none: the knowledge base matched the folder)."""
        found = await asyncio.to_thread(read_folder, self.folder, self.default_language)
        events = import_events(found, await self.store.known(), datetime.now(UTC))
        if events:
            await self.publisher.publish_many(
                [Outgoing.event(self.topic, event.slug, event) for event in events], timeout=PUBLISH_TIMEOUT_SECONDS
            )
            await self.store.apply(events)
            logger.info("knowledge base imported", extra={"folder": str(self.folder), "changes": len(events)})
        return events

    async def watch(self) -> None:
        """A round after each burst of changes, and every RESCAN_SECONDS without one: a round that failed (Kafka or
        Redis away) is tried again then, and a change the watch could not see (a network file system) is found."""
        async for _ in watchfiles.awatch(self.folder, rust_timeout=RESCAN_SECONDS * 1000, yield_on_timeout=True):
            try:
                await self.import_folder()
            except Exception:
                logger.exception("knowledge base import failed; trying again")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Imports once (the process starts only once that succeeded), then watches while the block runs."""
        self.folder.mkdir(parents=True, exist_ok=True)
        await self.import_folder()
        async with running(self.watch(), name="knowledge-import"):
            yield
