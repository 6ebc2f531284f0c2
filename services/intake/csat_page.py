"""The rating page's HTML (`GET /v1/csat/{token}`): pure rendering, every value escaped.

One plain form, no script: a 1–5 choice as radio buttons in a fieldset, an optional comment and a
submit button; errors sit next to their field (`aria-describedby`) and are announced (`role="alert"`).
It uses the customer page's stylesheet and nothing from elsewhere; `PAGE_HEADERS` pin that down
(Content-Security-Policy) and keep the token in the URL away from any third party (Referrer-Policy).
"""

from __future__ import annotations

from html import escape

from services.intake.ratings import MAX_COMMENT_CHARS, SCORES

SCORE_WORDS = {1: "Very poor", 2: "Poor", 3: "Okay", 4: "Good", 5: "Excellent"}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
INVALID_LINK = "This rating link is not valid"
EXPIRED_LINK = "This rating link has expired"


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <meta name="robots" content="noindex">
  <title>{escape(title)}</title>
  <link rel="stylesheet" href="/static/style.css">
</head>
<body>
  <header class="site-header">
    <div class="container"><p class="lede">Customer support</p></div>
  </header>
  <main id="main" class="container csat">
    <section class="card">
{body}
    </section>
  </main>
</body>
</html>
"""


def rating_page(
    ticket_id: str, *, score: object = None, comment: str = "", errors: dict[str, str] | None = None
) -> str:
    """The form; after a refused post, with what the customer chose and wrote and the errors by field."""
    errors = errors or {}
    choices = "\n".join(_choice(value, checked=str(score) == str(value), invalid="score" in errors) for value in SCORES)
    alert = (
        '      <div class="notice notice-error" role="alert"><p>Please correct the highlighted fields.</p></div>\n'
        if errors
        else ""
    )
    body = f"""      <h1>How did we do?</h1>
      <p>Please rate the help you got with ticket <strong class="ticket-id">{escape(ticket_id)}</strong>.</p>
{alert}      <form method="post" novalidate>
        <fieldset class="field csat-scale" aria-describedby="score-error">
          <legend>Your rating, from 1 (very poor) to 5 (excellent)</legend>
{choices}
          <p id="score-error" class="field-error">{escape(errors.get("score", ""))}</p>
        </fieldset>
        <div class="field">
          <label for="comment">Comment <span class="optional">(optional)</span></label>
          <textarea id="comment" name="comment" rows="5" aria-describedby="comment-hint comment-error"
{'                    aria-invalid="true"' if "comment" in errors else ""}>{escape(comment)}</textarea>
          <p id="comment-hint" class="hint">Up to {MAX_COMMENT_CHARS:,} characters.</p>
          <p id="comment-error" class="field-error">{escape(errors.get("comment", ""))}</p>
        </div>
        <button type="submit" class="button">Send rating</button>
      </form>"""
    return _page(f"Rate ticket {ticket_id}", body)


def _choice(value: int, *, checked: bool, invalid: bool) -> str:
    attributes = "".join((" checked" if checked else "", ' aria-invalid="true"' if invalid else ""))
    return (
        f'          <label class="csat-choice"><input type="radio" name="score" value="{value}" required{attributes}>'
        f' <span class="csat-score">{value}</span> <span class="csat-word">{SCORE_WORDS[value]}</span></label>'
    )


def thanks_page(ticket_id: str) -> str:
    body = f"""      <div class="notice notice-success" role="status">
        <h1>Thank you for your rating!</h1>
        <p>We have your feedback on ticket <strong class="ticket-id">{escape(ticket_id)}</strong>.</p>
      </div>"""
    return _page("Thank you for your rating", body)


def problem_page(title: str, advice: str) -> str:
    """A page for a link that rates nothing: why, and what the customer can do."""
    body = f"""      <h1>{escape(title)}</h1>
      <p>{escape(advice)}</p>"""
    return _page(title, body)
