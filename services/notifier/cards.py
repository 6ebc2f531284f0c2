"""The ticket card: the Block Kit message that stands for a ticket in Slack. Pure.

The card is the root of the ticket's thread in the team channel and is sent again to the
assignee's DM; after every change of the ticket it is rebuilt from the read model and updated in
place. Its buttons' `action_id`s are fixed (intake's Slack interactivity drives them), each with the
ticket ID as `value`. Everything a customer wrote is clipped, then escaped: escaping makes a
character up to five ("&" → "&amp;"), and a block past Slack's limits is refused (`invalid_blocks`),
which would leave the ticket without a card and so without its thread.
https://api.slack.com/reference/block-kit/blocks (section text: at most 3,000 characters; fields: at
most 10, 2,000 characters each; actions: at most 25 elements; button text: 75),
https://api.slack.com/reference/surfaces/formatting#date-formatting
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from services.knowledge.slack import SAVE_ARTICLE_BUTTON, SEND_ARTICLE_BUTTON
from services.notifier.slack_text import escape
from shared import i18n
from shared.events import ACTIVE_STATUSES

# (action_id, label's message ID, style): the first row works the ticket, the second moves it along its lifecycle.
WORK_BUTTONS = (
    ("sb_claim", "card.button.claim", None),
    ("sb_reply", "card.button.reply", None),
    ("sb_note", "card.button.note", None),
    ("sb_reassign", "card.button.reassign", None),
)
STATUS_BUTTONS = (
    ("sb_pending", "card.button.pending", None),
    ("sb_resolve", "card.button.resolve", "primary"),
    ("sb_escalate", "card.button.escalate", "danger"),
    ("sb_reopen", "card.button.reopen", None),
)
ACTION_IDS = tuple(action_id for action_id, _, _ in WORK_BUTTONS + STATUS_BUTTONS)
ARTICLE_TITLE_CHARS = 150
# Customer-supplied text shown at most (characters before escaping), so that escaped (x5) with its
# markup each block stays within Slack's limits: the subject's section 3,000, a field 2,000.
EXCERPT_CHARS = 500
SUBJECT_CHARS = 500
NAME_CHARS = 150
EMAIL_CHARS = 200
TAG_CHARS = 40
TAGS_SHOWN = 8
# Each status's and priority's emoji; the words are the team's language's (`card.status.*`, `card.priority.*`).
STATUS_EMOJI = {
    "new": ":new: ",
    "open": ":large_green_circle: ",
    "pending": ":hourglass: ",
    "on_hold": ":double_vertical_bar: ",
    "solved": ":white_check_mark: ",
    "closed": ":lock: ",
}
PRIORITY_EMOJI = {"low": "", "normal": "", "high": ":arrow_up: ", "urgent": ":rotating_light: "}


def status_label(status: str, texts: i18n.Texts) -> str:
    if status not in STATUS_EMOJI:
        return escape(status)
    return STATUS_EMOJI[status] + texts(f"card.status.{status}")


def priority_label(priority: str, texts: i18n.Texts) -> str:
    if priority not in PRIORITY_EMOJI:
        return escape(priority)
    return PRIORITY_EMOJI[priority] + texts(f"card.priority.{priority}")


@dataclass(frozen=True)
class CardState:
    """What the card shows, as the read model holds it (`sb:ticket:<id>`, its contact and first message)."""

    ticket_id: str
    subject: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    channel: str | None = None
    status: str = "open"
    priority: str = "normal"
    team_name: str | None = None
    assignee_name: str | None = None
    assignee_slack_user_id: str | None = None
    # The assignee took it (or was handed it) while at or over their capacity.
    over_capacity: bool = False
    tags: tuple[str, ...] = ()
    # The first-response SLA: due time and "running" | "warning" | "breached" | "met".
    first_response_due: datetime | None = None
    first_response_sla: str | None = None
    escalation_level: int = 0
    merged_into: str | None = None
    follow_up_of: str | None = None
    csat_score: int | None = None
    excerpt: str | None = None
    # Articles that may answer it (`ticket.suggestions`): (slug, title), best first.
    suggestions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Card:
    blocks: list[dict[str, Any]] = field(default_factory=list)
    # What notifications and clients without Block Kit show.
    text: str = ""

    @property
    def digest(self) -> str:
        """A short digest of everything the card shows: equal digests, the same message in Slack."""
        return hashlib.blake2b(orjson.dumps([self.text, self.blocks]), digest_size=16).hexdigest()


def card_state(
    fields: dict[str, str],
    *,
    contact_name: str | None = None,
    contact_email: str | None = None,
    team_name: str | None = None,
    excerpt: str | None = None,
) -> CardState:
    """The card's state from the ticket hash's fields (strings, as Redis answers them)."""
    due = fields.get("first_response_due")
    return CardState(
        ticket_id=fields["id"],
        subject=fields.get("subject") or None,
        contact_name=contact_name,
        contact_email=contact_email,
        channel=fields.get("channel"),
        status=fields.get("status") or "open",
        priority=fields.get("priority") or "normal",
        team_name=team_name,
        assignee_name=fields.get("assignee_name") or None,
        assignee_slack_user_id=fields.get("assignee_slack_user_id") or None,
        over_capacity=fields.get("over_capacity") == "1",
        tags=tuple(json.loads(fields["tags"])) if fields.get("tags") else (),
        first_response_due=datetime.fromisoformat(due) if due else None,
        first_response_sla=fields.get("first_response_sla") or None,
        escalation_level=int(fields.get("escalation_level") or 0),
        merged_into=fields.get("merged_into") or None,
        follow_up_of=fields.get("follow_up_of") or None,
        csat_score=int(fields["csat_score"]) if fields.get("csat_score") else None,
        excerpt=excerpt,
        suggestions=tuple(
            (article["slug"], article["title"]) for article in json.loads(fields.get("suggestions") or "[]")
        ),
    )


def ticket_card(state: CardState, texts: i18n.Texts | None = None) -> Card:
    """The card's blocks (header, facts, the opening message, two rows of buttons) and its fallback text, in
    `texts`' language (the team's; default en)."""
    texts = texts or i18n.texts(None)
    subject = _shown(state.subject, SUBJECT_CHARS) if state.subject else texts("card.no_subject")
    facts = [
        (texts("card.fact.contact"), _contact(state, texts)),
        (texts("card.fact.channel"), _shown(state.channel, NAME_CHARS) if state.channel else texts("card.unknown")),
        (texts("card.fact.status"), status_label(state.status, texts)),
        (texts("card.fact.priority"), priority_label(state.priority, texts)),
        (texts("card.fact.assignee"), _assignee(state, texts)),
        (texts("card.fact.next_sla"), sla_line(state, texts)),
    ]
    if state.tags:
        tags = " ".join(f"`{_shown(tag, TAG_CHARS)}`" for tag in state.tags[:TAGS_SHOWN])
        more = len(state.tags) - TAGS_SHOWN
        facts.append((texts("card.fact.tags"), texts.plural("card.tags_more", more, tags=tags) if more > 0 else tags))
    if state.escalation_level:
        facts.append((texts("card.fact.escalation"), texts("card.escalation_level", level=state.escalation_level)))
    if state.csat_score is not None:
        facts.append((texts("card.fact.csat"), f"{state.csat_score}/5"))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(f"*{state.ticket_id}* {subject}")},
        {"type": "section", "fields": [_mrkdwn(f"*{name}*\n{value}") for name, value in facts[:10]]},
    ]
    if notes := _notes(state, texts):
        blocks.append({"type": "context", "elements": [_mrkdwn(notes)]})
    if state.excerpt:
        blocks.append({"type": "section", "text": _mrkdwn(_quote(state.excerpt))})
    blocks += _suggestion_blocks(state, texts)
    blocks.append(_actions("sb_card_work", state.ticket_id, WORK_BUTTONS, texts))
    blocks.append(_actions("sb_card_status", state.ticket_id, STATUS_BUTTONS, texts))
    if state.status == "solved":
        blocks.append(
            _actions(
                "sb_card_knowledge", state.ticket_id, ((SAVE_ARTICLE_BUTTON, "card.button.save_article", None),), texts
            )
        )
    text = (
        f"*{state.ticket_id}* {subject} · {status_label(state.status, texts)}"
        f" · {priority_label(state.priority, texts)} · {_assignee(state, texts)}"
    )
    if state.excerpt:
        text += f"\n{_quote(state.excerpt)}"
    return Card(blocks=blocks, text=text)


def _suggestion_blocks(state: CardState, texts: i18n.Texts) -> list[dict[str, Any]]:
    """The suggested articles while the ticket is active, each with a "Send to customer" button."""
    if not state.suggestions or state.status not in ACTIVE_STATUSES:
        return []
    blocks: list[dict[str, Any]] = [
        {"type": "context", "elements": [_mrkdwn(f":bulb: *{texts('card.suggested_articles')}*")]}
    ]
    for slug, title in state.suggestions:
        blocks.append(
            {
                "type": "section",
                "text": _mrkdwn(f"{_shown(title, ARTICLE_TITLE_CHARS)} (`{escape(slug)}`)"),
                "accessory": {
                    "type": "button",
                    "action_id": SEND_ARTICLE_BUTTON,
                    "text": {"type": "plain_text", "text": texts("card.button.send_article")},
                    "value": f"{state.ticket_id} {slug}",
                },
            }
        )
    return blocks


def sla_line(state: CardState, texts: i18n.Texts | None = None) -> str:
    """The next SLA deadline as Slack shows it in each reader's time zone, or what became of it."""
    texts = texts or i18n.texts(None)
    due = state.first_response_due
    when = f"<!date^{int(due.timestamp())}^{{date_short_pretty}} {{time}}|{due.isoformat()}>" if due else None
    match state.first_response_sla:
        case "met":
            return texts("card.sla.met")
        case "breached":
            overdue = texts("card.sla.overdue_was", when=when) if when else texts("card.sla.overdue")
            return f":rotating_light: {overdue}" if when else overdue
        case _ if state.status not in ("new", "open") or when is None:
            return "—"
        case "warning":
            return f":hourglass_flowing_sand: {texts('card.sla.due', when=when)}"
        case _:
            return texts("card.sla.due", when=when)


def _contact(state: CardState, texts: i18n.Texts) -> str:
    name = _shown(state.contact_name, NAME_CHARS) if state.contact_name else None
    email = _shown(state.contact_email, EMAIL_CHARS) if state.contact_email else None
    if name and email:
        return f"{name} ({email})"
    return name or email or texts("card.unknown")


def _assignee(state: CardState, texts: i18n.Texts) -> str:
    over = f" {texts('card.over_capacity')}" if state.over_capacity else ""
    if state.assignee_slack_user_id:
        return f"<@{state.assignee_slack_user_id}>{over}"
    if state.assignee_name:
        return _shown(state.assignee_name, NAME_CHARS) + over
    if state.team_name:
        return texts("card.unassigned_queue", team=_shown(state.team_name, NAME_CHARS))
    return texts("card.unassigned")


def _notes(state: CardState, texts: i18n.Texts) -> str:
    notes = []
    if state.merged_into:
        notes.append(texts("card.merged_into", ticket_id=f"*{escape(state.merged_into)}*"))
    if state.follow_up_of:
        notes.append(texts("card.follow_up_of", ticket_id=f"*{escape(state.follow_up_of)}*"))
    if state.team_name:
        notes.append(texts("card.team", team=_shown(state.team_name, NAME_CHARS)))
    return " · ".join(notes)


def _actions(
    block_id: str, ticket_id: str, buttons: tuple[tuple[str, str, str | None], ...], texts: i18n.Texts
) -> dict[str, Any]:
    elements = []
    for action_id, label, style in buttons:
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": texts(label)},
            "value": ticket_id,
        }
        if style:
            button["style"] = style
        elements.append(button)
    return {"type": "actions", "block_id": block_id, "elements": elements}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _quote(text: str) -> str:
    return ">" + _shown(text, EXCERPT_CHARS).replace("\n", "\n>")


def _shown(text: str, limit: int) -> str:
    """`text` clipped to `limit` characters, then escaped (clipping after would cut "&amp;" in half)."""
    return escape(text if len(text) <= limit else f"{text[: limit - 1]}…")
