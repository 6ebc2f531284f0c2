"""The modals agents fill in from a ticket card: reply, note, reassign. Pure: views as Block Kit JSON.

The wire format is fixed with the notifier's card (see the BRIEF of issue #10): the card's buttons
`sb_reply`, `sb_note`, `sb_reassign` open the modals `sb_reply_modal`, `sb_note_modal`,
`sb_reassign_modal`, whose `private_metadata` is the ticket ID and whose input is block/action
`text` (plain_text_input) or `assignee` (static_select of `agent:<id>` and `team:<id>`).
Limits from https://api.slack.com/reference/surfaces/views and /reference/block-kit: a title and
button labels ≤ 24 characters, option labels ≤ 75, a select ≤ 100 options, a text input ≤ 3000.
"""

from __future__ import annotations

from typing import Any, Literal

from shared import i18n
from shared.config import DeskConfig, Team

TEXT_BLOCK = "text"
ASSIGNEE_BLOCK = "assignee"
MODAL_OF_BUTTON = {"sb_reply": "sb_reply_modal", "sb_note": "sb_note_modal", "sb_reassign": "sb_reassign_modal"}
MAX_INPUT_CHARS = 3000
_MAX_TITLE = 24
_MAX_OPTION_LABEL = 75
_MAX_OPTIONS = 100


def _plain(text: str, limit: int | None = None) -> dict[str, Any]:
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return {"type": "plain_text", "text": text}


def _modal(
    callback_id: str, ticket_id: str, title: str, submit: str, block: dict[str, Any], texts: i18n.Texts
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": ticket_id,
        "title": _plain(title, _MAX_TITLE),
        "submit": _plain(submit, _MAX_TITLE),
        "close": _plain(texts("modal.cancel")),
        "blocks": [block],
    }


def text_modal(kind: Literal["reply", "note"], ticket_id: str, texts: i18n.Texts | None = None) -> dict[str, Any]:
    """The reply modal (its text goes to the customer) or the note modal (internal), in the agent's language
    (`texts`; default en)."""
    texts = texts or i18n.texts(None)
    title, submit, label, hint = (
        texts(f"modal.{kind}.{part}", ticket_id=ticket_id) for part in ("title", "submit", "label", "hint")
    )
    block = {
        "type": "input",
        "block_id": TEXT_BLOCK,
        "label": _plain(label),
        "hint": _plain(hint),
        "element": {
            "type": "plain_text_input",
            "action_id": TEXT_BLOCK,
            "multiline": True,
            "max_length": MAX_INPUT_CHARS,
        },
    }
    return _modal(MODAL_OF_BUTTON[f"sb_{kind}"], ticket_id, title, submit, block, texts)


def reassign_modal(
    ticket_id: str, team: Team | None, config: DeskConfig, texts: i18n.Texts | None = None
) -> dict[str, Any]:
    """The reassign modal: the ticket's team's agents (`agent:<id>`), then every team's queue (`team:<id>`)."""
    texts = texts or i18n.texts(None)
    members = [] if team is None else [*team.members, *([team.lead] if team.lead not in team.members else [])]
    agents = [config.agent(agent_id) for agent_id in dict.fromkeys(member for member in members if member)]
    options = [_option(agent.name, f"agent:{agent.id}") for agent in agents]
    options += [_option(texts("modal.reassign.queue", team=other.name), f"team:{other.id}") for other in config.teams]
    block = {
        "type": "input",
        "block_id": ASSIGNEE_BLOCK,
        "label": _plain(texts("modal.reassign.label")),
        "element": {
            "type": "static_select",
            "action_id": ASSIGNEE_BLOCK,
            "placeholder": _plain(texts("modal.reassign.placeholder")),
            "options": options[:_MAX_OPTIONS],
        },
    }
    title, submit = texts("modal.reassign.title", ticket_id=ticket_id), texts("modal.reassign.submit")
    return _modal(MODAL_OF_BUTTON["sb_reassign"], ticket_id, title, submit, block, texts)


def _option(label: str, value: str) -> dict[str, Any]:
    return {"text": _plain(label, _MAX_OPTION_LABEL), "value": value}
