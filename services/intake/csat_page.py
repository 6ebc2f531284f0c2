"""The rating page's HTML (`GET /v1/csat/{token}`): pure rendering, every value escaped.

One plain form, no script: a 1–5 choice as radio buttons in a fieldset, an optional comment and a
submit button; errors sit next to their field (`aria-describedby`) and are announced (`role="alert"`).
It uses the customer page's stylesheet and nothing from elsewhere; `PAGE_HEADERS` pin that down
(Content-Security-Policy) and keep the token in the URL away from any third party (Referrer-Policy).
"""

from __future__ import annotations

from html import escape

from services.intake.ratings import MAX_COMMENT_CHARS, SCORES
from shared import i18n

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def customer_page(
    title: str, body: str, texts: i18n.Texts, *, site: str, main_class: str, private: bool = False
) -> str:
    """A page for customers (this rating page, the help centre's) on the customer page's stylesheet, in
    `texts`' language: `title` is text; `site` (the header's line) and `body` are HTML, escaped by the caller.
    `private`: its URL holds a token, so the page sends no referrer and asks not to be indexed."""
    private_meta = (
        '  <meta name="referrer" content="no-referrer">\n  <meta name="robots" content="noindex">\n' if private else ""
    )
    return f"""<!doctype html>
<html lang="{escape(texts.locale)}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
{private_meta}  <title>{escape(title)}</title>
  <link rel="stylesheet" href="/static/style.css">
</head>
<body>
  <header class="site-header">
    <div class="container"><p class="lede">{site}</p></div>
  </header>
  <main id="main" class="container {main_class}">
    <section class="card">
{body}
    </section>
  </main>
</body>
</html>
"""


def _page(title: str, body: str, texts: i18n.Texts) -> str:
    return customer_page(title, body, texts, site=escape(texts("csat.page.site")), main_class="csat", private=True)


def rating_page(
    ticket_id: str,
    *,
    score: object = None,
    comment: str = "",
    errors: dict[str, str] | None = None,
    texts: i18n.Texts | None = None,
) -> str:
    """The form in `texts`' language (default en); after a refused post, with what the customer chose and
    wrote and the errors by field."""
    texts = texts or i18n.texts(None)
    errors = errors or {}
    choices = "\n".join(
        _choice(value, texts, checked=str(score) == str(value), invalid="score" in errors) for value in SCORES
    )
    alert = (
        f'      <div class="notice notice-error" role="alert"><p>{escape(texts("error.correct_fields"))}</p></div>\n'
        if errors
        else ""
    )
    body = f"""      <h1>{escape(texts("csat.page.heading"))}</h1>
      <p>{with_ticket(texts("csat.page.intro", ticket_id="{ticket_id}"), ticket_id)}</p>
{alert}      <form method="post" novalidate>
        <fieldset class="field csat-scale" aria-describedby="score-error">
          <legend>{escape(texts("csat.page.legend"))}</legend>
{choices}
          <p id="score-error" class="field-error">{escape(errors.get("score", ""))}</p>
        </fieldset>
        <div class="field">
          <label for="comment">{escape(texts("csat.page.comment"))} <span class="optional">{
        escape(texts("field.optional"))
    }</span></label>
          <textarea id="comment" name="comment" rows="5" aria-describedby="comment-hint comment-error"
{'                    aria-invalid="true"' if "comment" in errors else ""}>{escape(comment)}</textarea>
          <p id="comment-hint" class="hint">{escape(texts.plural("csat.page.comment_hint", MAX_COMMENT_CHARS))}</p>
          <p id="comment-error" class="field-error">{escape(errors.get("comment", ""))}</p>
        </div>
        <button type="submit" class="button">{escape(texts("csat.page.submit"))}</button>
      </form>"""
    return _page(texts("csat.page.title", ticket_id=ticket_id), body, texts)


def with_ticket(text: str, ticket_id: str) -> str:
    """`text` escaped, with its {ticket_id} shown as the ticket ID in bold."""
    before, _, after = text.partition("{ticket_id}")
    return f'{escape(before)}<strong class="ticket-id">{escape(ticket_id)}</strong>{escape(after)}'


def _choice(value: int, texts: i18n.Texts, *, checked: bool, invalid: bool) -> str:
    attributes = "".join((" checked" if checked else "", ' aria-invalid="true"' if invalid else ""))
    word = escape(texts(f"csat.word.{value}"))
    return (
        f'          <label class="csat-choice"><input type="radio" name="score" value="{value}" required{attributes}>'
        f' <span class="csat-score">{value}</span> <span class="csat-word">{word}</span></label>'
    )


def thanks_page(ticket_id: str, texts: i18n.Texts | None = None) -> str:
    texts = texts or i18n.texts(None)
    body = f"""      <div class="notice notice-success" role="status">
        <h1>{escape(texts("csat.thanks.heading"))}</h1>
        <p>{with_ticket(texts("csat.thanks.body", ticket_id="{ticket_id}"), ticket_id)}</p>
      </div>"""
    return _page(texts("csat.thanks.title"), body, texts)


def problem_page(title: str, advice: str, texts: i18n.Texts | None = None) -> str:
    """A page for a link that rates nothing: why, and what the customer can do."""
    body = f"""      <h1>{escape(title)}</h1>
      <p>{escape(advice)}</p>"""
    return _page(title, body, texts or i18n.texts(None))
