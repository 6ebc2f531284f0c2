"""What agents see of a merge the router would not make on its own (`contact.merge_suggested`): a post in
the ticket's thread naming the two contacts, why they were kept apart, and two buttons. Pure.

Buttons: `sb_merge_contacts` (merge the newer contact into the older one; the router applies it as a
`command.merge_contacts`) and `sb_keep_contacts` (leave them apart), each `value` =
"<ticket ID>:<contact ID>:<other contact ID>".
"""

from __future__ import annotations

from typing import Any

from services.notifier.slack_text import escape
from shared.events import MergeSuggested

MERGE_BUTTON = "sb_merge_contacts"
KEEP_APART_BUTTON = "sb_keep_contacts"


def suggestion_text(event: MergeSuggested) -> str:
    return (
        f":busts_in_silhouette: *{event.ticket_id}*: contacts `{event.contact_id}` and `{event.other_contact_id}`"
        f" may be one customer ({escape(event.identity)}), but were not merged: {escape(event.reason)}."
    )


def button_value(ticket_id: str, contact_id: str, other_contact_id: str) -> str:
    return f"{ticket_id}:{contact_id}:{other_contact_id}"


def slack_blocks(ticket_id: str, text: str, contacts: tuple[str, str]) -> list[dict[str, Any]]:
    value = button_value(ticket_id, *contacts)
    buttons = [
        {
            "type": "button",
            "action_id": MERGE_BUTTON,
            "text": {"type": "plain_text", "text": "Merge"},
            "style": "primary",
            "value": value,
        },
        {
            "type": "button",
            "action_id": KEEP_APART_BUTTON,
            "text": {"type": "plain_text", "text": "Keep apart"},
            "value": value,
        },
    ]
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "block_id": "sb_contact_suggestion", "elements": buttons},
    ]
