"""Knowledge-base articles: Markdown files with YAML front matter, and the events that publish them. Pure.

A file `refund-policy.md` in the `knowledge_base.path` folder (subfolders too) is the article `refund-policy`:

    ---
    title: How refunds work
    language: en          # ISO 639-1; the desk's first language when left out
    tags: [billing, refund]
    team: billing         # optional: the team whose answer it is
    slug: refunds         # optional: instead of the file name
    ---
    You can ask for a refund within 30 days ...

Import is idempotent: an article publishes `article.published` only when its content hash (title, language,
tags, team, body) differs from what the articles topic last said of its slug, and `article.removed` when a
file of the folder is gone (articles saved from Slack are not the folder's to remove). Event IDs derive from
slug and content, so two intake instances importing the same folder publish the same events.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import orjson
import yaml

from shared.events import ArticleEvent, ArticlePublished, ArticleRemoved
from shared.ids import derived_id

# Who publishes what the folder holds (the events' `actor`).
IMPORT_ACTOR = "import"
# What a customer's "this solved it" sets as a solved ticket's reason (counted as a deflection in reports).
DEFLECTED = "deflected"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
MAX_BODY_CHARS = 200_000


class ArticleError(ValueError):
    """A file that is no article: its front matter is not YAML, a field has the wrong shape, or no title."""


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    language: str
    body: str
    tags: tuple[str, ...] = ()
    team: str | None = None

    @property
    def content_hash(self) -> str:
        """SHA-256 (hex) of what the article says: equal hashes, nothing to publish."""
        content = [self.title, self.language, list(self.tags), self.team, self.body]
        return hashlib.sha256(orjson.dumps(content)).hexdigest()


def slugify(text: str) -> str:
    """A URL-safe slug of `text` ("Refund Policy.md" stem → "refund-policy"); "" when nothing is left."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:100].strip("-")


def parse_article(stem: str, text: str, default_language: str) -> Article:
    """The article of a Markdown file named `stem` (without ".md"); raises ArticleError."""
    match = _FRONT_MATTER.match(text)
    meta: object = {}
    body = text
    if match:
        try:
            meta = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as error:
            raise ArticleError(f"front matter is not YAML: {error}") from None
        body = text[match.end() :]
    if not isinstance(meta, dict):
        raise ArticleError("front matter must be a mapping (title: ..., language: ...)")
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ArticleError("front matter has no title")
    slug = meta.get("slug", stem)
    slug = slugify(slug) if isinstance(slug, str) else ""
    if not SLUG.match(slug):
        raise ArticleError(f"no usable slug from {stem!r}")
    language = meta.get("language", default_language)
    if not isinstance(language, str) or not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", language):
        raise ArticleError(f"language {language!r} is not a language tag (en, zh, zh-Hans)")
    tags = meta.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ArticleError("tags must be a list of words")
    team = meta.get("team")
    if team is not None and not isinstance(team, str):
        raise ArticleError("team must be a team ID")
    if len(body) > MAX_BODY_CHARS:
        raise ArticleError(f"the article is longer than {MAX_BODY_CHARS} characters")
    # "zh-Hans" searches as Chinese: the primary subtag is what tokenising and detection know.
    primary = language.split("-", 1)[0].lower()
    return Article(slug, title.strip(), primary, body.strip(), tuple(tags), team)


@dataclass(frozen=True)
class KnownArticle:
    """What the knowledge base holds of a slug: its content hash and where it came from."""

    content_hash: str
    source: Literal["folder", "slack"]


def import_events(found: Iterable[Article], known: Mapping[str, KnownArticle], now: datetime) -> list[ArticleEvent]:
    """The events that bring the knowledge base in line with the folder's articles `found`: new and changed
    ones published, folder articles no longer found removed; an unchanged article publishes nothing."""
    events: list[ArticleEvent] = []
    seen: set[str] = set()
    for article in found:
        seen.add(article.slug)
        held = known.get(article.slug)
        if held is None or held.content_hash != article.content_hash:
            events.append(published(article, now, source="folder", actor=IMPORT_ACTOR))
    for slug, held in sorted(known.items()):
        if slug not in seen and held.source == "folder":
            events.append(
                ArticleRemoved(
                    event_id=derived_id("article-removed", slug, held.content_hash),
                    occurred_at=now,
                    slug=slug,
                    actor=IMPORT_ACTOR,
                )
            )
    return events


def published(
    article: Article,
    now: datetime,
    *,
    source: Literal["folder", "slack"],
    actor: str,
    ticket_id: str | None = None,
) -> ArticlePublished:
    return ArticlePublished(
        event_id=derived_id("article", article.slug, article.content_hash),
        occurred_at=now,
        slug=article.slug,
        actor=actor,
        title=article.title,
        language=article.language,
        tags=list(article.tags),
        team=article.team,
        body=article.body,
        content_hash=article.content_hash,
        source=source,
        ticket_id=ticket_id,
    )


def article_of(event: ArticlePublished) -> Article:
    return Article(event.slug, event.title, event.language, event.body, tuple(event.tags), event.team)
