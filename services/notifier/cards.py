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

# (action_id, label, style): the first row works the ticket, the second moves it along its lifecycle.
WORK_BUTTONS = (
    ("sb_claim", "Claim", None),
    ("sb_reply", "Reply", None),
    ("sb_note", "Note", None),
    ("sb_reassign", "Reassign", None),
)
STATUS_BUTTONS = (
    ("sb_pending", "Pending", None),
    ("sb_resolve", "Resolve", "primary"),
    ("sb_escalate", "Escalate", "danger"),
    ("sb_reopen", "Reopen", None),
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
STATUS_LABELS = {
    "new": ":new: New",
    "open": ":large_green_circle: Open",
    "pending": ":hourglass: Pending (waiting on the customer)",
    "on_hold": ":double_vertical_bar: On hold",
    "solved": ":white_check_mark: Solved",
    "closed": ":lock: Closed",
}
PRIORITY_LABELS = {"low": "Low", "normal": "Normal", "high": ":arrow_up: High", "urgent": ":rotating_light: Urgent"}


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


def ticket_card(state: CardState) -> Card:
    """The card's blocks (header, facts, the opening message, two rows of buttons) and its fallback text."""
    subject = _shown(state.subject, SUBJECT_CHARS) if state.subject else "(no subject)"
    facts = [
        ("Contact", _contact(state)),
        ("Channel", _shown(state.channel or "unknown", NAME_CHARS)),
        ("Status", STATUS_LABELS.get(state.status, escape(state.status))),
        ("Priority", PRIORITY_LABELS.get(state.priority, escape(state.priority))),
        ("Assignee", _assignee(state)),
        ("Next SLA", sla_line(state)),
    ]
    if state.tags:
        tags = " ".join(f"`{_shown(tag, TAG_CHARS)}`" for tag in state.tags[:TAGS_SHOWN])
        more = len(state.tags) - TAGS_SHOWN
        facts.append(("Tags", f"{tags} and {more} more" if more > 0 else tags))
    if state.escalation_level:
        facts.append(("Escalation", f"level {state.escalation_level}"))
    if state.csat_score is not None:
        facts.append(("CSAT", f"{state.csat_score}/5"))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(f"*{state.ticket_id}* {subject}")},
        {"type": "section", "fields": [_mrkdwn(f"*{name}*\n{value}") for name, value in facts[:10]]},
    ]
    if notes := _notes(state):
        blocks.append({"type": "context", "elements": [_mrkdwn(notes)]})
    if state.excerpt:
        blocks.append({"type": "section", "text": _mrkdwn(_quote(state.excerpt))})
    blocks += _suggestion_blocks(state)
    blocks.append(_actions("sb_card_work", state.ticket_id, WORK_BUTTONS))
    blocks.append(_actions("sb_card_status", state.ticket_id, STATUS_BUTTONS))
    if state.status == "solved":
        blocks.append(_actions("sb_card_knowledge", state.ticket_id, ((SAVE_ARTICLE_BUTTON, "Save as article", None),)))
    text = (
        f"*{state.ticket_id}* {subject} · {STATUS_LABELS.get(state.status, escape(state.status))}"
        f" · {PRIORITY_LABELS.get(state.priority, escape(state.priority))} · {_assignee(state)}"
    )
    if state.excerpt:
        text += f"\n{_quote(state.excerpt)}"
    return Card(blocks=blocks, text=text)


def _suggestion_blocks(state: CardState) -> list[dict[str, Any]]:
    """The suggested articles while the ticket is active, each with a "Send to customer" button."""
    if not state.suggestions or state.status not in ("new", "open", "pending", "on_hold"):
        return []
    blocks: list[dict[str, Any]] = [{"type": "context", "elements": [_mrkdwn(":bulb: *Suggested articles*")]}]
    for slug, title in state.suggestions:
        blocks.append(
            {
                "type": "section",
                "text": _mrkdwn(f"{_shown(title, ARTICLE_TITLE_CHARS)} (`{escape(slug)}`)"),
                "accessory": {
                    "type": "button",
                    "action_id": SEND_ARTICLE_BUTTON,
                    "text": {"type": "plain_text", "text": "Send to customer"},
                    "value": f"{state.ticket_id} {slug}",
                },
            }
        )
    return blocks


def sla_line(state: CardState) -> str:
    """The next SLA deadline as Slack shows it in each reader's time zone, or what became of it."""
    due = state.first_response_due
    when = f"<!date^{int(due.timestamp())}^{{date_short_pretty}} {{time}}|{due.isoformat()}>" if due else None
    match state.first_response_sla:
        case "met":
            return "First response met"
        case "breached":
            return f":rotating_light: First response overdue (was due {when})" if when else "First response overdue"
        case _ if state.status not in ("new", "open") or when is None:
            return "—"
        case "warning":
            return f":hourglass_flowing_sand: First response due {when}"
        case _:
            return f"First response due {when}"


def _contact(state: CardState) -> str:
    name = _shown(state.contact_name, NAME_CHARS) if state.contact_name else None
    email = _shown(state.contact_email, EMAIL_CHARS) if state.contact_email else None
    if name and email:
        return f"{name} ({email})"
    return name or email or "unknown"


def _assignee(state: CardState) -> str:
    over = " (over capacity)" if state.over_capacity else ""
    if state.assignee_slack_user_id:
        return f"<@{state.assignee_slack_user_id}>{over}"
    if state.assignee_name:
        return _shown(state.assignee_name, NAME_CHARS) + over
    return f"Unassigned (in {_shown(state.team_name, NAME_CHARS)}'s queue)" if state.team_name else "Unassigned"


def _notes(state: CardState) -> str:
    notes = []
    if state.merged_into:
        notes.append(f"Merged into *{escape(state.merged_into)}*")
    if state.follow_up_of:
        notes.append(f"Follow-up of *{escape(state.follow_up_of)}*")
    if state.team_name:
        notes.append(f"Team: {_shown(state.team_name, NAME_CHARS)}")
    return " · ".join(notes)


def _actions(block_id: str, ticket_id: str, buttons: tuple[tuple[str, str, str | None], ...]) -> dict[str, Any]:
    elements = []
    for action_id, label, style in buttons:
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": label},
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
