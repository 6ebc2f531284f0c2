"""The `/sb` slash command: what an agent asks for, and the ephemeral answers. Pure.

`/sb mine`, `/sb queue`, `/sb show SB-1042`, `/sb away`, `/sb back`, `/sb merge SURVIVOR MERGED`,
`/sb unmerge MERGED` (contacts), `/sb call` (log a phone call: services.intake.phone_calls), `/sb help`
(anything else answers the help). Answers are Slack mrkdwn (https://api.slack.com/reference/surfaces/formatting):
`&`, `<`, `>` in ticket data are escaped, and lists stop at MAX_LISTED tickets, saying how many
more there are, well under Slack's 40,000 characters of a message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.intake.slack_agents import is_ticket_id
from shared.contact_commands import CONTACT_ID

SUBCOMMANDS = ("mine", "queue", "show", "away", "back", "merge", "unmerge", "call", "help")
MAX_LISTED = 20
_MAX_SUBJECT = 80
# The most pressing first.
_PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}

HELP = "\n".join(
    [
        "*Switchboard* — `/sb` and:",
        "• `mine` — your active tickets",
        "• `queue` — your teams' unassigned tickets",
        "• `show SB-1042` — one ticket: status, priority, assignee, contact",
        "• `away` / `back` — stop / start getting new tickets",
        "• `merge SURVIVOR MERGED` / `unmerge MERGED` — merge two contacts (IDs as `show` gives them) / undo it",
        "• `call` — log a phone call as a ticket",
        "• `help` — this list",
        "On a ticket's card: its buttons; in its thread: your reply goes to the customer, `note: …` stays internal.",
    ]
)


@dataclass(frozen=True)
class SlashRequest:
    subcommand: str
    argument: str = ""


def parse(text: str) -> SlashRequest:
    """What `/sb <text>` asks for; an unknown or empty subcommand is `help`."""
    words = text.split()
    if not words or words[0].lower() not in SUBCOMMANDS:
        return SlashRequest("help", " ".join(words))
    return SlashRequest(words[0].lower(), " ".join(words[1:]))


def show_target(request: SlashRequest) -> str | None:
    """The ticket ID of `/sb show <id>` (any case), or None."""
    candidate = request.argument.strip().upper()
    return candidate if is_ticket_id(candidate) else None


def contact_targets(request: SlashRequest) -> tuple[str, str | None] | None:
    """(merged contact, survivor) of `/sb merge SURVIVOR MERGED`, (merged contact, None) of `/sb unmerge
    MERGED`, or None when the arguments are not that."""
    words = request.argument.split()
    if not all(CONTACT_ID.fullmatch(word) for word in words):
        return None
    if request.subcommand == "merge" and len(words) == 2:
        return words[1], words[0]
    if request.subcommand == "unmerge" and len(words) == 1:
        return words[0], None
    return None


def help_answer(request: SlashRequest) -> str:
    if request.subcommand == "help" and request.argument:
        return f"`/sb {escape(request.argument[:40])}` is not a Switchboard command.\n{HELP}"
    return HELP


def escape(text: str) -> str:
    """Text shown as itself in mrkdwn: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _sort_key(ticket: Mapping[str, str]) -> tuple[int, str, int]:
    prefix, _, number = ticket.get("id", "").partition("-")
    return _PRIORITY_RANK.get(ticket.get("priority", ""), 4), prefix, int(number) if number.isdigit() else 0


def ticket_line(ticket: Mapping[str, str]) -> str:
    subject = ticket.get("subject") or "(no subject)"
    if len(subject) > _MAX_SUBJECT:
        subject = subject[: _MAX_SUBJECT - 1] + "…"
    status, priority = ticket.get("status") or "?", ticket.get("priority") or "?"
    return f"• `{ticket.get('id', '?')}` {escape(subject)} — {status}, {priority}"


def ticket_list(title: str, tickets: Sequence[Mapping[str, str]], *, empty: str) -> str:
    """A titled list of tickets, most pressing first, at most MAX_LISTED of them."""
    if not tickets:
        return f"*{title}*\n{empty}"
    ordered = sorted(tickets, key=_sort_key)
    lines = [f"*{title}* ({len(ordered)})", *(ticket_line(ticket) for ticket in ordered[:MAX_LISTED])]
    if len(ordered) > MAX_LISTED:
        lines.append(f"…and {len(ordered) - MAX_LISTED} more.")
    return "\n".join(lines)


def ticket_details(fields: Mapping[str, str], contact: Mapping[str, Any] | None) -> str:
    """One ticket as `/sb show` answers it, from its read-model hash and its contact."""
    lines = [f"*{fields['id']}* {escape(fields.get('subject') or '(no subject)')}"]
    status, priority, team = (fields.get(name, "?") for name in ("status", "priority", "team"))
    lines.append(f"Status: {status} · Priority: {priority} · Team: {team}")
    assignee = fields.get("assignee_name")
    lines.append(f"Assignee: {escape(assignee)}" if assignee else "Assignee: nobody (in the team's queue)")
    lines.append(f"Contact: {_contact(contact)}")
    lines.append(f"Channel: {fields.get('channel', '?')} · created {fields.get('created_at', '?')}")
    if tags := json.loads(fields.get("tags") or "[]"):
        lines.append("Tags: " + ", ".join(escape(tag) for tag in tags))
    if due := fields.get("first_response_due"):
        lines.append(f"First response due: {due} ({fields.get('first_response_sla', '?')})")
    if level := fields.get("escalation_level"):
        lines.append(f"Escalation level: {level}")
    if merged := fields.get("merged_into"):
        lines.append(f"Merged into: {merged}")
    if score := fields.get("csat_score"):
        comment = fields.get("csat_comment")
        lines.append(f"CSAT: {score}/5" + (f" “{escape(comment)}”" if comment else ""))
    return "\n".join(lines)


def _contact(contact: Mapping[str, Any] | None) -> str:
    if not contact:
        return "unknown"
    reach = [*contact.get("emails", []), *contact.get("phones", [])]
    name = contact.get("name") or (reach[0] if reach else contact.get("id", "unknown"))
    return escape(f"{name} ({', '.join(reach)})" if reach and name != reach[0] else name)


def availability_answer(available: bool) -> str:
    if available:
        return "You are back: new tickets can be assigned to you again."
    return "You are away: no new tickets are assigned to you until `/sb back`."
