"""What agents read in Slack. Pure: builds message text, escaping everything a customer wrote."""

from __future__ import annotations

from shared.events import ContactSummary, SlaBreached, SlaWarning, TicketAssigned


def escape(text: str) -> str:
    """Slack's control sequences (<!channel>, <@U…>, <http://…|label>) become plain text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _contact(contact: ContactSummary) -> str:
    if contact.name and contact.email:
        return f"{escape(contact.name)} ({escape(contact.email)})"
    return escape(contact.name or contact.email or contact.contact_id)


def assignment_text(event: TicketAssigned) -> str:
    subject = escape(event.subject) if event.subject else "(no subject)"
    return f"*{event.ticket_id}* {subject}\nFrom {_contact(event.contact)} · assigned to <@{event.slack_user_id}>"


def assignment_dm_text(event: TicketAssigned) -> str:
    subject = escape(event.subject) if event.subject else "(no subject)"
    return f"You have a new ticket: *{event.ticket_id}* {subject}\nFrom {_contact(event.contact)}"


def sla_text(event: SlaWarning | SlaBreached, mention: str | None) -> str:
    who = f"<@{mention}> " if mention else ""
    due = event.due_at.strftime("%Y-%m-%d %H:%M %Z")
    if isinstance(event, SlaBreached):
        return f"{who}:rotating_light: *{event.ticket_id}* breached its first-response target (due {due})"
    return (
        f"{who}:hourglass_flowing_sand: *{event.ticket_id}* has used {event.fraction:.0%} "
        f"of its first-response time (due {due})"
    )
