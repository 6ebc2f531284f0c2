"""Offline search of the knowledge base: BM25 (bm25s) per language, the title weighted above the body. Pure.

Tokens: services/router/duplicates.py's (NFKC- and case-folded words; Chinese cut by jieba), without
English and Chinese stop words (bm25s's lists), no stemming. An article's document is its title's tokens
TITLE_WEIGHT times, then its tags and its body's: a word of the title counts as much as it occurring
TITLE_WEIGHT times in the body (BM25's term-frequency saturation keeps a long body from drowning it).

Each language has its own index (and so its own document frequencies): a query is scored against its
language's articles first, then, unless the language was given, the others'. The query's language, when
not given, is what services/router/detection.py detects among the desk's languages and the articles'.
Scores are BM25's (Lucene's IDF, k1 1.5, b 0.75): 0 when no word is shared, unbounded above, comparable
within one language only; `knowledge_base.suggest_at` is a floor on them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import bm25s
from bm25s.stopwords import STOPWORDS_CHINESE, STOPWORDS_EN_PLUS

from services.knowledge.articles import Article
from services.router.duplicates import tokens as words

TITLE_WEIGHT = 3
# Enough of a long question to find its words; BM25 over more only costs time.
QUERY_CHARS = 2_000


@dataclass(frozen=True)
class Hit:
    slug: str
    title: str
    language: str
    score: float


@functools.cache
def _stop_words() -> frozenset[str]:
    return frozenset(STOPWORDS_EN_PLUS) | frozenset(STOPWORDS_CHINESE)


def tokens(text: str) -> list[str]:
    """The words BM25 indexes and looks up: folded, Chinese cut by jieba, stop words left out."""
    stop = _stop_words()
    return [word for word in words(text) if word not in stop]


def document(article: Article) -> list[str]:
    """The tokens an article is indexed by: its title's TITLE_WEIGHT times, its tags', its body's."""
    return tokens(article.title) * TITLE_WEIGHT + tokens(" ".join(article.tags)) + tokens(article.body)


class _LanguageIndex:
    def __init__(self, articles: list[Article]):
        self.articles = articles
        self.bm25 = bm25s.BM25()
        # bm25s wants at least one token per document: an empty article gets a placeholder no query has.
        self.bm25.index([document(article) or ["\x00"] for article in articles], show_progress=False)

    def scores(self, query: list[str]) -> list[tuple[float, Article]]:
        return [
            (float(score), article)
            for score, article in zip(self.bm25.get_scores(query), self.articles, strict=True)
            if score > 0
        ]


class KnowledgeIndex:
    """The articles' BM25 indexes, one per language; built once per change of the knowledge base."""

    def __init__(self, articles: Iterable[Article]):
        by_language: dict[str, list[Article]] = {}
        for article in sorted(articles, key=lambda article: article.slug):
            by_language.setdefault(article.language, []).append(article)
        self.languages = tuple(sorted(by_language))
        self._indexes = {language: _LanguageIndex(found) for language, found in by_language.items()}

    def __len__(self) -> int:
        return sum(len(index.articles) for index in self._indexes.values())

    def search(
        self, query: str, language: str, *, only_language: bool = False, limit: int = 10, min_score: float = 0.0
    ) -> list[Hit]:
        """Articles matching `query`, best first: `language`'s first (only those with `only_language`), then
        the other languages' best first; at most `limit`, each scoring above 0 and at least `min_score`."""
        query_tokens = tokens(query[:QUERY_CHARS])
        if not query_tokens:
            return []
        order = [language] if only_language else [language, *(other for other in self.languages if other != language)]
        hits: list[Hit] = []
        for each in order:
            if (index := self._indexes.get(each)) is None:
                continue
            found = sorted(index.scores(query_tokens), key=lambda pair: (-pair[0], pair[1].slug))
            hits += [
                Hit(article.slug, article.title, article.language, round(score, 4))
                for score, article in found
                if score >= min_score
            ]
            if len(hits) >= limit:
                break
        return hits[:limit]
