"""What agents read in Slack. Pure: builds message text, escaping everything a customer wrote."""

from __future__ import annotations

from shared.events import ContactSummary, MessageAdded, SlaBreached, SlaEscalated, SlaWarning, TicketAssigned

# Slack's own limit is 40,000 characters; a thread stays readable with much less.
MIRROR_LIMIT = 3000
# A subject or a name shown at most (characters before escaping): the customer chooses its length.
SUBJECT_CHARS = 500
NAME_CHARS = 200


def escape(text: str) -> str:
    """Slack's control sequences (<!channel>, <@U…>, <http://…|label>) become plain text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _contact(contact: ContactSummary) -> str:
    if contact.name and contact.email:
        return f"{_short(contact.name, NAME_CHARS)} ({_short(contact.email, NAME_CHARS)})"
    return _short(contact.name or contact.email or contact.contact_id, NAME_CHARS)


def _clip(text: str) -> str:
    return text if len(text) <= MIRROR_LIMIT else f"{text[:MIRROR_LIMIT]}…"


def _short(text: str, limit: int) -> str:
    """Clipped, then escaped (clipping after could cut "&amp;" in half)."""
    return escape(text if len(text) <= limit else f"{text[: limit - 1]}…")


def _subject(subject: str | None) -> str:
    return _short(subject, SUBJECT_CHARS) if subject else "(no subject)"


def _quote(text: str) -> str:
    return ">" + _clip(escape(text)).replace("\n", "\n>")


def assignment_text(event: TicketAssigned, first_message: str | None = None) -> str:
    """The ticket's announcement in the team channel: the root of its Slack thread."""
    text = (
        f"*{event.ticket_id}* {_subject(event.subject)}\n"
        f"From {_contact(event.contact)} · assigned to <@{event.slack_user_id}>"
    )
    return f"{text}\n{_quote(first_message)}" if first_message else text


def assignment_dm_text(event: TicketAssigned) -> str:
    return f"You have a new ticket: *{event.ticket_id}* {_subject(event.subject)}\nFrom {_contact(event.contact)}"


def queued_text(ticket_id: str, team_name: str) -> str:
    """The card of a ticket waiting in a team's queue, as text (where cards are not built)."""
    return f"*{ticket_id}* waits in {escape(team_name)}'s queue"


_TARGET_NAMES = {"first_response": "first-response", "next_response": "next-response", "resolution": "resolution"}


def sla_text(event: SlaWarning | SlaBreached, mention: str | None) -> str:
    who = f"<@{mention}> " if mention else ""
    due = event.due_at.strftime("%Y-%m-%d %H:%M %Z")
    target = _TARGET_NAMES[event.metric]
    if isinstance(event, SlaBreached):
        return f"{who}:rotating_light: *{event.ticket_id}* breached its {target} target (due {due})"
    used = f"{event.fraction:.0%}"
    return f"{who}:hourglass_flowing_sand: *{event.ticket_id}* has used {used} of its {target} time (due {due})"


def _handed(to: str) -> str:
    if to == "lead":
        return "handed up the escalation chain"
    return "back to the team's queue" if to == "queue" else f"handed to team {escape(to)}"


def escalation_text(event: SlaEscalated) -> str:
    """An SLA escalation level that fired: what, when, who is asked to act, and what was done."""
    who = " ".join(f"<@{user}>" for user in event.notify_users)
    due = event.due_at.strftime("%Y-%m-%d %H:%M %Z")
    done = [
        *([_handed(event.reassigned_to)] if event.reassigned_to else []),
        *([f"priority raised to {event.raised_to}"] if event.raised_to else []),
    ]
    text = (
        f":arrow_double_up: *{event.ticket_id}* SLA escalation level {event.level}: "
        f"{_TARGET_NAMES[event.metric]} target, {event.trigger} (due {due})"
    )
    return " ".join(part for part in (text + ("; " + ", ".join(done) if done else ""), who) if part)


def duplicate_text(duplicate_ticket_id: str, ticket_id: str, score: float) -> str:
    """A new ticket of the same contact may repeat this one (`ticket.duplicate_suggested`)."""
    return (
        f":twisted_rightwards_arrows: *{duplicate_ticket_id}* from the same contact may repeat this ticket "
        f"({score:.0%} alike). To merge it here: `switchboard ticket merge {duplicate_ticket_id} {ticket_id}`"
    )


def customer_message_text(event: MessageAdded) -> str:
    """A customer's later message, mirrored into the ticket's thread."""
    who = _short(event.sender.name or event.sender.email or "customer", NAME_CHARS) if event.sender else "customer"
    label = {
        "message": f"{who} wrote",
        "edit": f"{who} edited a message",
        "auto_reply": "Automatic reply received (not answered)",
        "bounce": "Delivery failure received",
        "complaint": "Spam complaint received",
    }[event.kind]
    if event.review:
        label = f":warning: {label} — {event.review}; review before answering"
    files = f"\n_{len(event.attachments)} attachment(s)_" if event.attachments else ""
    return f"{label} on {event.channel}:\n{_quote(event.text)}{files}"


def agent_message_text(event: MessageAdded, agent_name: str) -> str:
    """An agent's reply or internal note written outside the ticket's thread (a modal, the CLI), mirrored into it."""
    label = "(note)" if event.internal else "replied"
    return f"*{escape(agent_name)}* {label}:\n{_quote(event.text)}"


def undelivered_text(reason: str) -> str:
    return f"Not delivered to the customer: {reason}"
