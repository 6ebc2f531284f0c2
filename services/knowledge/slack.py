"""The knowledge base in Slack, in pure code: a suggested article's "Send to customer" button, and a solved
ticket's "Save as article" button with its modal.

Wire format (services/notifier/cards.py draws the buttons): `sb_send_article` with value "<ticket ID> <slug>"
publishes the agent's `command.reply` of the article (title, text, link); `sb_save_article` with the ticket ID
as value opens the modal `sb_article_modal` (private_metadata: the ticket ID; inputs `title`, `language`,
`body`), prefilled with the ticket's subject and language and the agent's last public reply; its submission
publishes `article.published` (source "slack"). Limits: https://api.slack.com/reference/surfaces/views.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.knowledge.articles import SLUG, Article, published, slugify
from shared import i18n
from shared.events import AgentReply, ArticlePublished, SlackOrigin

SEND_ARTICLE_BUTTON = "sb_send_article"
SAVE_ARTICLE_BUTTON = "sb_save_article"
ARTICLE_MODAL = "sb_article_modal"
TITLE_BLOCK, LANGUAGE_BLOCK, BODY_BLOCK = "title", "language", "body"
# A Slack text input holds at most 3,000 characters; a reply quotes at most this much of an article.
MAX_INPUT_CHARS = 3000
REPLY_BODY_CHARS = 3000


def article_of_button(value: str) -> tuple[str, str] | None:
    """(ticket ID, slug) of a "Send to customer" button's value, or None when it is not one."""
    ticket_id, _, slug = value.partition(" ")
    return (ticket_id, slug) if ticket_id and SLUG.match(slug) else None


def article_reply(
    article: ArticlePublished,
    url: str,
    *,
    event_id: Any,
    ticket_id: str,
    agent_id: str,
    origin: SlackOrigin | None,
    now: datetime,
) -> AgentReply:
    """The public reply that sends `article` to the customer: its title, its text (clipped) and its link."""
    body = article.body if len(article.body) <= REPLY_BODY_CHARS else f"{article.body[: REPLY_BODY_CHARS - 1]}…"
    return AgentReply(
        event_id=event_id,
        occurred_at=now,
        ticket_id=ticket_id,
        agent_id=agent_id,
        origin=origin,
        text=f"{article.title}\n\n{body}\n\n{url}",
    )


def _plain(text: str, limit: int | None = None) -> dict[str, Any]:
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return {"type": "plain_text", "text": text}


def _input(block_id: str, label: str, initial: str, *, multiline: bool = False, limit: int = MAX_INPUT_CHARS) -> dict:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": block_id, "max_length": limit}
    if multiline:
        element["multiline"] = True
    if initial:
        element["initial_value"] = initial[:limit]
    return {"type": "input", "block_id": block_id, "label": _plain(label), "element": element}


def article_modal(
    ticket_id: str, title: str, language: str, body: str, texts: i18n.Texts | None = None
) -> dict[str, Any]:
    """The "Save as article" modal, prefilled (the ticket's subject and language, the agent's last reply), in
    the agent's language (`texts`, services/intake/slack_agents.py agent_texts; default en)."""
    texts = texts or i18n.texts(None)
    return {
        "type": "modal",
        "callback_id": ARTICLE_MODAL,
        "private_metadata": ticket_id,
        "title": _plain(texts("modal.article.title"), 24),
        "submit": _plain(texts("modal.article.submit"), 24),
        "close": _plain(texts("modal.cancel")),
        "blocks": [
            _input(TITLE_BLOCK, texts("modal.article.title_label"), title, limit=300),
            _input(LANGUAGE_BLOCK, texts("modal.article.language_label"), language, limit=20),
            _input(BODY_BLOCK, texts("modal.article.body_label"), body, multiline=True),
        ],
    }


def saved_article(
    values: dict[str, Any], ticket_id: str, agent_id: str, now: datetime, texts: i18n.Texts | None = None
) -> ArticlePublished | dict[str, str]:
    """The article a submitted modal publishes, or the errors by input block to show in the modal (in the
    agent's language, `texts`; default en)."""
    texts = texts or i18n.texts(None)

    def value(block_id: str) -> str:
        state = values.get(block_id)
        field = state.get(block_id) if isinstance(state, dict) else None
        text = field.get("value") if isinstance(field, dict) else None
        return text.strip() if isinstance(text, str) else ""

    title, language, body = value(TITLE_BLOCK), value(LANGUAGE_BLOCK).lower(), value(BODY_BLOCK)
    errors = {}
    slug = slugify(title) or slugify(f"ticket {ticket_id}")
    if not title:
        errors[TITLE_BLOCK] = texts("modal.article.error.title")
    if not language.isalpha() or not 2 <= len(language) <= 3:
        errors[LANGUAGE_BLOCK] = texts("modal.article.error.language")
    if not body:
        errors[BODY_BLOCK] = texts("modal.article.error.body")
    if errors:
        return errors
    article = Article(slug=slug, title=title, language=language, body=body)
    return published(article, now, source="slack", actor=agent_id, ticket_id=ticket_id)
