"""The help centre's HTML (`GET /kb`, `GET /kb/{slug}`) and the "this solved it" pages: pure rendering.

Plain HTML on the customer page's stylesheet, no script, phone-friendly (the viewport meta and the
stylesheet's one column), in the reader's language (`texts`: the page's own words; an article's text stays as
written, marked with its language; a language asked for with `?lang=` stays on the help centre's links,
`kept`). Every value is escaped; an article's Markdown is rendered by markdown-it
(CommonMark, raw HTML off: tags in an article show as text, and its link check refuses javascript: and
the like), then cleaned by nh3 (an allow-list) all the same. `PAGE_HEADERS` (the rating page's) keep
scripts and other origins out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from html import escape
from urllib.parse import quote, urlencode

import nh3
from markdown_it import MarkdownIt

from services.intake.csat_page import customer_page, with_ticket
from services.knowledge.search import Hit
from shared import i18n
from shared.events import ArticlePublished

LANGUAGE_NAMES = {"en": "English", "zh": "中文"}


@functools.cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> str:
    """An article's body as safe HTML."""
    return nh3.clean(_markdown().render(text), link_rel="noopener noreferrer nofollow")


def _kb(path: str, kept: str | None) -> str:
    """A help centre URL, with the language the reader asked for (`?lang=`) when there was one."""
    return escape(f"{path}?{urlencode({'lang': kept})}" if kept else path)


def _page(title: str, body: str, texts: i18n.Texts, kept: str | None = None) -> str:
    contact = escape(texts("kb.contact"))
    site = f'<a href="{_kb("/kb", kept)}">{escape(texts("kb.site"))}</a> · <a href="/">{contact}</a>'
    return customer_page(title, body, texts, site=site, main_class="kb")


def _search_form(query: str, texts: i18n.Texts, kept: str | None) -> str:
    lang = f'\n        <input type="hidden" name="lang" value="{escape(kept)}">' if kept else ""
    return f"""      <form method="get" action="/kb" role="search" class="kb-search">{lang}
        <label for="kb-q">{escape(texts("kb.search.label"))}</label>
        <input id="kb-q" name="q" type="search" value="{escape(query)}" maxlength="500">
        <button type="submit" class="button">{escape(texts("kb.search.button"))}</button>
      </form>"""


def _link(slug: str, title: str, kept: str | None) -> str:
    return f'<a href="{_kb(f"/kb/{quote(slug)}", kept)}">{escape(title)}</a>'


def index_page(
    articles: Sequence[ArticlePublished],
    texts: i18n.Texts,
    query: str = "",
    hits: Sequence[Hit] | None = None,
    kept: str | None = None,
) -> str:
    """Every article by language, or, for a search, its results best first."""
    parts = [f"      <h1>{escape(texts('kb.site'))}</h1>", _search_form(query, texts, kept)]
    if hits is not None:
        parts.append(f"      <h2>{escape(texts.plural('kb.search.results', len(hits), query=query))}</h2>")
        if hits:
            items = "\n".join(f"        <li>{_link(hit.slug, hit.title, kept)}</li>" for hit in hits)
            parts.append(f'      <ol class="kb-results">\n{items}\n      </ol>')
        else:
            parts.append(
                f'      <p>{escape(texts("kb.search.nothing"))} <a href="/">{escape(texts("kb.search.ask"))}</a></p>'
            )
    by_language: dict[str, list[ArticlePublished]] = {}
    for article in sorted(articles, key=lambda article: article.title.casefold()):
        by_language.setdefault(article.language, []).append(article)
    if not articles:
        parts.append(f"      <p>{escape(texts('kb.empty'))}</p>")
    for language, found in sorted(by_language.items()):
        items = "\n".join(f"        <li>{_link(article.slug, article.title, kept)}</li>" for article in found)
        heading = escape(LANGUAGE_NAMES.get(language, language))
        parts.append(
            f'      <h2 lang="{escape(language)}">{heading}</h2>\n      <ul class="kb-list">\n{items}\n      </ul>'
        )
    return _page(texts("kb.site"), "\n".join(parts), texts, kept)


def article_page(article: ArticlePublished, texts: i18n.Texts, kept: str | None = None) -> str:
    """The article as written (marked with its own language), in the reader's chrome."""
    tags = ""
    if article.tags:
        tags = '      <p class="hint">' + " · ".join(escape(tag) for tag in article.tags) + "</p>\n"
    body = f"""      <article lang="{escape(article.language)}">
        <h1>{escape(article.title)}</h1>
{tags}        {render_markdown(article.body)}
      </article>
      <p><a href="{_kb("/kb", kept)}">{escape(texts("kb.all_articles"))}</a> · {
        escape(texts("kb.still_stuck"))
    } <a href="/">{escape(texts("kb.contact"))}</a></p>"""
    return _page(article.title, body, texts, kept)


def not_found_page(texts: i18n.Texts, kept: str | None = None) -> str:
    title = texts("kb.not_found")
    all_articles = f'<a href="{_kb("/kb", kept)}">{escape(texts("kb.all_articles"))}</a>'
    return _page(title, f"      <h1>{escape(title)}</h1>\n      <p>{all_articles}</p>", texts, kept)


def deflection_page(ticket_id: str, texts: i18n.Texts, *, done: bool = False) -> str:
    """The "this solved it" confirmation (a form: link checkers that follow a link must not solve tickets)."""
    if done:
        title = texts("kb.solved.done_title")
        body = f"""      <div class="notice notice-success" role="status">
        <h1>{escape(title)}</h1>
        <p>{with_ticket(texts("kb.solved.done_body", ticket_id="{ticket_id}"), ticket_id)}</p>
      </div>"""
        return _page(title, body, texts)
    title = texts("kb.solved.title")
    body = f"""      <h1>{escape(title)}</h1>
      <p>{with_ticket(texts("kb.solved.intro", ticket_id="{ticket_id}"), ticket_id)}</p>
      <form method="post">
        <button type="submit" class="button">{escape(texts("kb.solved.button"))}</button>
      </form>"""
    return _page(title, body, texts)


def problem_page(title: str, advice: str, texts: i18n.Texts) -> str:
    return _page(title, f"      <h1>{escape(title)}</h1>\n      <p>{escape(advice)}</p>", texts)
