"""The `/sb` slash command: what an agent asks for, and the ephemeral answers. Pure.

`/sb mine`, `/sb queue`, `/sb show SB-1042`, `/sb away`, `/sb back`, `/sb merge SURVIVOR MERGED`,
`/sb unmerge MERGED` (contacts), `/sb tag TARGET +vip -trial` (a contact's tags, TARGET a contact or a
ticket), `/sb call` (log a phone call: services.intake.phone_calls), `/sb help` (anything else answers the
help). Answers are Slack mrkdwn (https://api.slack.com/reference/surfaces/formatting):
`&`, `<`, `>` in ticket data are escaped, and lists stop at MAX_LISTED tickets, saying how many
more there are, well under Slack's 40,000 characters of a message. Answers are in the language of the
agent's (first) team (`teams[].language`, else the desk's: `agent_texts`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from services.intake.slack_agents import is_ticket_id
from shared import i18n
from shared.contact_commands import CONTACT_ID
from shared.events import ContactTag

SUBCOMMANDS = ("mine", "queue", "show", "away", "back", "merge", "unmerge", "tag", "call", "help")
MAX_LISTED = 20
_MAX_SUBJECT = 80
# The shape of a contact tag, as the CLI's `command.tag_contact` checks it (lower-cased).
_CONTACT_TAG: TypeAdapter[str] = TypeAdapter(ContactTag)
# The most pressing first.
_PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}

# The help's lines (message IDs), after its title.
HELP_LINES = ("mine", "queue", "show", "away", "merge", "tag", "call", "help", "card")


def help_text(texts: i18n.Texts | None = None) -> str:
    texts = texts or i18n.texts(None)
    return "\n".join([texts("sb.help.title"), *(texts(f"sb.help.{line}") for line in HELP_LINES)])


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


@dataclass(frozen=True)
class TagChange:
    """What `/sb tag TARGET +vip -trial ...` asks: `target` is a ticket ID (upper-cased: the ticket's
    contact) or a contact ID as given; `add` and `remove` are lower-cased, each once, in the order given;
    `invalid` holds the words that are no tag (as given)."""

    target: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()

    @property
    def ticket_id(self) -> str | None:
        return self.target if is_ticket_id(self.target) else None


def tag_change(request: SlashRequest) -> TagChange | None:
    """The tag change of `/sb tag TARGET WORD...`: `+name` adds, `-name` removes, a bare `name` adds.
    None when the target or the tags are missing (the answer is the usage). A name is a contact tag as the
    CLI takes it (`shared.events.ContactTag`: a word of letters, digits, `_`, `:`, `.`, `-`, 64 at most)."""
    target, *words = request.argument.split() or [""]
    if not words:
        return None
    add: dict[str, None] = {}
    remove: dict[str, None] = {}
    invalid: list[str] = []
    for word in words:
        into, name = (remove, word[1:]) if word.startswith("-") else (add, word.removeprefix("+"))
        try:
            into[_CONTACT_TAG.validate_python(name)] = None
        except ValidationError:
            invalid.append(word)
    return TagChange(
        target.upper() if is_ticket_id(target.upper()) else target, tuple(add), tuple(remove), tuple(invalid)
    )


def tag_listing(change: TagChange) -> str:
    """The asked changes as an agent types them: `+vip -trial`."""
    return " ".join([*(f"+{tag}" for tag in change.add), *(f"-{tag}" for tag in change.remove)])


def help_answer(request: SlashRequest, texts: i18n.Texts | None = None) -> str:
    texts = texts or i18n.texts(None)
    if request.subcommand == "help" and request.argument:
        unknown = texts("sb.unknown_command", command=f"`/sb {escape(request.argument[:40])}`")
        return f"{unknown}\n{help_text(texts)}"
    return help_text(texts)


def escape(text: str) -> str:
    """Text shown as itself in mrkdwn: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _sort_key(ticket: Mapping[str, str]) -> tuple[int, str, int]:
    prefix, _, number = ticket.get("id", "").partition("-")
    return _PRIORITY_RANK.get(ticket.get("priority", ""), 4), prefix, int(number) if number.isdigit() else 0


def ticket_line(ticket: Mapping[str, str], texts: i18n.Texts | None = None) -> str:
    subject = ticket.get("subject") or (texts or i18n.texts(None))("card.no_subject")
    if len(subject) > _MAX_SUBJECT:
        subject = subject[: _MAX_SUBJECT - 1] + "…"
    status, priority = ticket.get("status") or "?", ticket.get("priority") or "?"
    return f"• `{ticket.get('id', '?')}` {escape(subject)} — {status}, {priority}"


def ticket_list(
    title: str, tickets: Sequence[Mapping[str, str]], *, empty: str, texts: i18n.Texts | None = None
) -> str:
    """A titled list of tickets, most pressing first, at most MAX_LISTED of them."""
    texts = texts or i18n.texts(None)
    if not tickets:
        return f"*{title}*\n{empty}"
    ordered = sorted(tickets, key=_sort_key)
    lines = [f"*{title}* ({len(ordered)})", *(ticket_line(ticket, texts) for ticket in ordered[:MAX_LISTED])]
    if len(ordered) > MAX_LISTED:
        lines.append(texts.plural("sb.more", len(ordered) - MAX_LISTED))
    return "\n".join(lines)


def ticket_details(
    fields: Mapping[str, str], contact: Mapping[str, Any] | None, texts: i18n.Texts | None = None
) -> str:
    """One ticket as `/sb show` answers it, from its read-model hash and its contact."""
    texts = texts or i18n.texts(None)
    lines = [f"*{fields['id']}* {escape(fields.get('subject') or texts('card.no_subject'))}"]
    status, priority, team = (fields.get(name, "?") for name in ("status", "priority", "team"))
    lines.append(texts("sb.show.facts", status=status, priority=priority, team=team))
    assignee = fields.get("assignee_name")
    lines.append(texts("sb.show.assignee", assignee=escape(assignee)) if assignee else texts("sb.show.nobody"))
    lines.append(texts("sb.show.contact", contact=_contact(contact, texts)))
    lines.append(texts("sb.show.channel", channel=fields.get("channel", "?"), created=fields.get("created_at", "?")))
    if tags := json.loads(fields.get("tags") or "[]"):
        lines.append(texts("sb.show.tags", tags=", ".join(escape(tag) for tag in tags)))
    if due := fields.get("first_response_due"):
        lines.append(texts("sb.show.due", due=due, state=fields.get("first_response_sla", "?")))
    if level := fields.get("escalation_level"):
        lines.append(texts("sb.show.escalation", level=level))
    if merged := fields.get("merged_into"):
        lines.append(texts("sb.show.merged", ticket_id=merged))
    if score := fields.get("csat_score"):
        comment = fields.get("csat_comment")
        lines.append(f"CSAT: {score}/5" + (f" “{escape(comment)}”" if comment else ""))
    return "\n".join(lines)


def _contact(contact: Mapping[str, Any] | None, texts: i18n.Texts) -> str:
    if not contact:
        return texts("card.unknown")
    reach = [*contact.get("emails", []), *contact.get("phones", [])]
    name = contact.get("name") or (reach[0] if reach else contact.get("id", "unknown"))
    return escape(f"{name} ({', '.join(reach)})" if reach and name != reach[0] else name)


def availability_answer(available: bool, texts: i18n.Texts | None = None) -> str:
    texts = texts or i18n.texts(None)
    return texts("sb.back") if available else texts("sb.away")
