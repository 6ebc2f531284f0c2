"""What agents read in Slack. Pure: builds message text, escaping everything a customer wrote.

Texts are in the team's language (`texts`: `teams[].language`, else the desk's; default en). Reasons that
other services wrote into events (why a reply was not delivered, an escalation's trigger) are shown as
they came.
"""

from __future__ import annotations

from shared import i18n
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


def _subject(subject: str | None, texts: i18n.Texts) -> str:
    return _short(subject, SUBJECT_CHARS) if subject else texts("card.no_subject")


def _quote(text: str) -> str:
    return ">" + _clip(escape(text)).replace("\n", "\n>")


def _texts(texts: i18n.Texts | None) -> i18n.Texts:
    return texts or i18n.texts(None)


def assignment_text(event: TicketAssigned, first_message: str | None = None, texts: i18n.Texts | None = None) -> str:
    """The ticket's announcement in the team channel: the root of its Slack thread."""
    texts = _texts(texts)
    text = (
        f"*{event.ticket_id}* {_subject(event.subject, texts)}\n"
        f"{texts('slack.from', contact=_contact(event.contact))} · "
        f"{texts('slack.assigned_to', agent=f'<@{event.slack_user_id}>')}"
    )
    return f"{text}\n{_quote(first_message)}" if first_message else text


def assignment_dm_text(event: TicketAssigned, texts: i18n.Texts | None = None) -> str:
    texts = _texts(texts)
    ticket = f"*{event.ticket_id}* {_subject(event.subject, texts)}"
    return f"{texts('slack.new_ticket_dm', ticket=ticket)}\n{texts('slack.from', contact=_contact(event.contact))}"


def queued_text(ticket_id: str, team_name: str, texts: i18n.Texts | None = None) -> str:
    """The card of a ticket waiting in a team's queue, as text (where cards are not built)."""
    return _texts(texts)("slack.queued", ticket_id=f"*{ticket_id}*", team=escape(team_name))


def sla_text(event: SlaWarning | SlaBreached, mention: str | None, texts: i18n.Texts | None = None) -> str:
    texts = _texts(texts)
    who = f"<@{mention}> " if mention else ""
    due = event.due_at.strftime("%Y-%m-%d %H:%M %Z")
    target = texts(f"slack.metric.{event.metric}")
    ticket_id = f"*{event.ticket_id}*"
    if isinstance(event, SlaBreached):
        return f"{who}:rotating_light: {texts('slack.sla.breached', ticket_id=ticket_id, target=target, due=due)}"
    used = f"{event.fraction:.0%}"
    warning = texts("slack.sla.warning", ticket_id=ticket_id, used=used, target=target, due=due)
    return f"{who}:hourglass_flowing_sand: {warning}"


def _handed(to: str, texts: i18n.Texts) -> str:
    if to == "lead":
        return texts("slack.handed.lead")
    return texts("slack.handed.queue") if to == "queue" else texts("slack.handed.team", team=escape(to))


def escalation_text(event: SlaEscalated, texts: i18n.Texts | None = None) -> str:
    """An SLA escalation level that fired: what, when, who is asked to act, and what was done."""
    texts = _texts(texts)
    who = " ".join(f"<@{user}>" for user in event.notify_users)
    due = event.due_at.strftime("%Y-%m-%d %H:%M %Z")
    done = [
        *([_handed(event.reassigned_to, texts)] if event.reassigned_to else []),
        *([texts("slack.priority_raised", priority=event.raised_to)] if event.raised_to else []),
    ]
    escalated = texts(
        "slack.escalation",
        ticket_id=f"*{event.ticket_id}*",
        level=event.level,
        target=texts(f"slack.metric.{event.metric}"),
        trigger=event.trigger,
        due=due,
    )
    text = f":arrow_double_up: {escalated}"
    return " ".join(part for part in (text + ("; " + ", ".join(done) if done else ""), who) if part)


def duplicate_text(duplicate_ticket_id: str, ticket_id: str, score: float, texts: i18n.Texts | None = None) -> str:
    """A new ticket of the same contact may repeat this one (`ticket.duplicate_suggested`)."""
    suggestion = _texts(texts)(
        "slack.duplicate",
        duplicate=f"*{duplicate_ticket_id}*",
        score=f"{score:.0%}",
        command=f"`switchboard ticket merge {duplicate_ticket_id} {ticket_id}`",
    )
    return f":twisted_rightwards_arrows: {suggestion}"


def customer_message_text(event: MessageAdded, texts: i18n.Texts | None = None) -> str:
    """A customer's later message, mirrored into the ticket's thread."""
    texts = _texts(texts)
    unknown = texts("slack.customer.unknown")
    who = _short(event.sender.name or event.sender.email or unknown, NAME_CHARS) if event.sender else unknown
    label = {
        "message": texts("slack.customer.wrote", who=who),
        "edit": texts("slack.customer.edited", who=who),
        "auto_reply": texts("slack.customer.auto_reply"),
        "bounce": texts("slack.customer.bounce"),
        "complaint": texts("slack.customer.complaint"),
    }[event.kind]
    if event.review:
        label = f":warning: {texts('slack.customer.review', label=label, review=event.review)}"
    files = f"\n_{texts.plural('slack.attachments', len(event.attachments))}_" if event.attachments else ""
    return f"{texts('slack.customer.on', label=label, channel=event.channel)}\n{_quote(event.text)}{files}"


def agent_message_text(event: MessageAdded, agent_name: str, texts: i18n.Texts | None = None) -> str:
    """An agent's reply or internal note written outside the ticket's thread (a modal, the CLI), mirrored into it."""
    texts = _texts(texts)
    label = texts("slack.agent.note") if event.internal else texts("slack.agent.replied")
    return f"*{escape(agent_name)}* {label}:\n{_quote(event.text)}"


def undelivered_text(reason: str, texts: i18n.Texts | None = None) -> str:
    return _texts(texts)("slack.undelivered", reason=reason)
