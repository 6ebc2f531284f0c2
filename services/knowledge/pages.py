"""The help centre's HTML (`GET /kb`, `GET /kb/{slug}`) and the "this solved it" pages: pure rendering.

Plain HTML on the customer page's stylesheet, no script, phone-friendly (the viewport meta and the
stylesheet's one column). Every value is escaped; an article's Markdown is rendered by markdown-it
(CommonMark, raw HTML off: tags in an article show as text, and its link check refuses javascript: and
the like), then cleaned by nh3 (an allow-list) all the same. `PAGE_HEADERS` (the rating page's) keep
scripts and other origins out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from html import escape
from urllib.parse import quote

import nh3
from markdown_it import MarkdownIt

from services.knowledge.search import Hit
from shared.events import ArticlePublished

LANGUAGE_NAMES = {"en": "English", "zh": "中文"}


@functools.cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> str:
    """An article's body as safe HTML."""
    return nh3.clean(_markdown().render(text), link_rel="noopener noreferrer nofollow")


def _page(title: str, body: str, *, language: str = "en") -> str:
    return f"""<!doctype html>
<html lang="{escape(language)}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(title)}</title>
  <link rel="stylesheet" href="/static/style.css">
</head>
<body>
  <header class="site-header">
    <div class="container"><p class="lede"><a href="/kb">Help centre</a> · <a href="/">Contact support</a></p></div>
  </header>
  <main id="main" class="container kb">
    <section class="card">
{body}
    </section>
  </main>
</body>
</html>
"""


def _search_form(query: str) -> str:
    return f"""      <form method="get" action="/kb" role="search" class="kb-search">
        <label for="kb-q">Search the help centre</label>
        <input id="kb-q" name="q" type="search" value="{escape(query)}" maxlength="500">
        <button type="submit" class="button">Search</button>
      </form>"""


def _link(slug: str, title: str) -> str:
    return f'<a href="/kb/{quote(slug)}">{escape(title)}</a>'


def index_page(articles: Sequence[ArticlePublished], query: str = "", hits: Sequence[Hit] | None = None) -> str:
    """Every article by language, or, for a search, its results best first."""
    parts = ["      <h1>Help centre</h1>", _search_form(query)]
    if hits is not None:
        parts.append(f"      <h2>Results for “{escape(query)}”</h2>")
        if hits:
            items = "\n".join(f"        <li>{_link(hit.slug, hit.title)}</li>" for hit in hits)
            parts.append(f'      <ol class="kb-results">\n{items}\n      </ol>')
        else:
            parts.append('      <p>No article matches. <a href="/">Ask us</a> and an agent will answer.</p>')
    by_language: dict[str, list[ArticlePublished]] = {}
    for article in sorted(articles, key=lambda article: article.title.casefold()):
        by_language.setdefault(article.language, []).append(article)
    if not articles:
        parts.append("      <p>There are no articles yet.</p>")
    for language, found in sorted(by_language.items()):
        items = "\n".join(f"        <li>{_link(article.slug, article.title)}</li>" for article in found)
        heading = escape(LANGUAGE_NAMES.get(language, language))
        parts.append(
            f'      <h2 lang="{escape(language)}">{heading}</h2>\n      <ul class="kb-list">\n{items}\n      </ul>'
        )
    return _page("Help centre", "\n".join(parts))


def article_page(article: ArticlePublished) -> str:
    tags = ""
    if article.tags:
        tags = '      <p class="hint">' + " · ".join(escape(tag) for tag in article.tags) + "</p>\n"
    body = f"""      <article lang="{escape(article.language)}">
        <h1>{escape(article.title)}</h1>
{tags}        {render_markdown(article.body)}
      </article>
      <p><a href="/kb">All articles</a> · Still stuck? <a href="/">Contact support</a></p>"""
    return _page(article.title, body, language=article.language)


def not_found_page() -> str:
    return _page("No such article", '      <h1>No such article</h1>\n      <p><a href="/kb">All articles</a></p>')


def deflection_page(ticket_id: str, *, done: bool = False) -> str:
    """The "this solved it" confirmation (a form: link checkers that follow a link must not solve tickets)."""
    if done:
        body = f"""      <div class="notice notice-success" role="status">
        <h1>Glad that helped!</h1>
        <p>We closed ticket <strong class="ticket-id">{escape(ticket_id)}</strong> as solved. Write again any
          time: replying to it opens it again.</p>
      </div>"""
        return _page("Glad that helped", body)
    body = f"""      <h1>Did an article solve it?</h1>
      <p>Then we mark ticket <strong class="ticket-id">{escape(ticket_id)}</strong> as solved and no agent needs
        to answer it.</p>
      <form method="post">
        <button type="submit" class="button">Yes, this solved it</button>
      </form>"""
    return _page("Did an article solve it?", body)


def problem_page(title: str, advice: str) -> str:
    return _page(title, f"      <h1>{escape(title)}</h1>\n      <p>{escape(advice)}</p>")
