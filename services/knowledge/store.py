"""The knowledge base in Redis: a projection of the articles topic (`switchboard replay` rebuilds it).

- `sb:kb:articles`: HASH slug → the article's latest `article.published` event (JSON);
- `sb:kb:changed`: HASH slug → when its latest change happened (Unix seconds), removals included, so that a
  change delivered late never overwrites a newer one;
- `sb:kb:version`: the event ID of the latest change applied: readers rebuild their search index when it
  differs from the one they built it at (`KnowledgeCache`).

Whoever publishes an article event applies it here too (the importer, a Slack "Save as article").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from redis.asyncio import Redis

from services.knowledge.articles import KnownArticle, article_of
from services.knowledge.search import KnowledgeIndex
from shared.events import ArticleEvent, ArticlePublished

ARTICLES_KEY = "sb:kb:articles"
CHANGED_KEY = "sb:kb:changed"
VERSION_KEY = "sb:kb:version"

# ARGV: per event (slug, Unix seconds, the article's JSON or "" for a removal, event ID).
_APPLY = """
local applied = 0
for i = 1, #ARGV, 4 do
  local slug, at = ARGV[i], tonumber(ARGV[i + 1])
  local before = tonumber(redis.call('HGET', KEYS[2], slug) or '-1')
  if at >= before then
    redis.call('HSET', KEYS[2], slug, ARGV[i + 1])
    if ARGV[i + 2] == '' then
      redis.call('HDEL', KEYS[1], slug)
    else
      redis.call('HSET', KEYS[1], slug, ARGV[i + 2])
    end
    redis.call('SET', KEYS[3], ARGV[i + 3])
    applied = applied + 1
  end
end
return applied
"""


class ArticleStore:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._apply = redis.register_script(_APPLY)

    async def apply(self, events: Sequence[ArticleEvent]) -> None:
        """Projects the events in one script call; an older change never overwrites a newer one."""
        if not events:
            return
        args: list[str] = []
        for event in events:
            article = event.model_dump_json() if isinstance(event, ArticlePublished) else ""
            args += [event.slug, repr(event.occurred_at.timestamp()), article, str(event.event_id)]
        await self._apply(keys=[ARTICLES_KEY, CHANGED_KEY, VERSION_KEY], args=args)

    async def get(self, slug: str) -> ArticlePublished | None:
        stored = await self.redis.hget(ARTICLES_KEY, slug)
        return ArticlePublished.model_validate_json(stored) if stored is not None else None

    async def known(self) -> dict[str, KnownArticle]:
        """Slug → content hash and source of every article held."""
        return {article.slug: KnownArticle(article.content_hash, article.source) for article in await self.articles()}

    async def articles(self) -> list[ArticlePublished]:
        """Every article held, by slug."""
        stored = await self.redis.hgetall(ARTICLES_KEY)
        return [ArticlePublished.model_validate_json(stored[slug]) for slug in sorted(stored)]


class KnowledgeCache:
    """The search index of the articles Redis holds, rebuilt only when they changed (`sb:kb:version`): a
    reader pays one GET per look while nothing changes."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self._version: str | None = None
        self._index: KnowledgeIndex | None = None

    async def index(self) -> KnowledgeIndex | None:
        """The current index, or None while the knowledge base holds no article."""
        version = await self.redis.get(VERSION_KEY)
        if version is None:
            return None
        if version != self._version:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(VERSION_KEY)
                pipe.hgetall(ARTICLES_KEY)
                version, stored = await pipe.execute()
            articles = [ArticlePublished.model_validate_json(value) for value in stored.values()]
            # jieba and BM25 over every article: off the event loop.
            index = await asyncio.to_thread(KnowledgeIndex, [article_of(article) for article in articles])
            self._version, self._index = version, index if articles else None
        return self._index
