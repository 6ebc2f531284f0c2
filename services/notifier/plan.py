"""What the notifier sends for each ticket event, in pure code.

`plan` turns a ticket event and what is known about its ticket into `Delivery`s: the
acknowledgement to the customer, the announcement in the team channel (the root of the ticket's
Slack thread) and the DM to the assignee, agent replies on the customer's channel, mirrors into the
ticket's thread, SLA warnings. Each delivery has an idempotency key derived from the event, so a
redelivered event plans the very same deliveries and none is sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.notifier.email_out import is_no_reply_address, reply_subject
from services.notifier.slack_text import (
    agent_reply_text,
    assignment_dm_text,
    assignment_text,
    customer_message_text,
    sla_text,
)
from shared.config import DeskConfig, Team
from shared.events import (
    MessageAdded,
    NotificationPurpose,
    ReplyRoute,
    SlaBreached,
    SlaWarning,
    TicketAssigned,
    TicketCreated,
    TicketEvent,
)
from shared.identities import normalise_email


@dataclass(frozen=True)
class Delivery:
    """One message to send. `target` names the queue it waits in: "slack:C0SUPPORT", "email:ana@…"."""

    key: str
    ticket_id: str
    purpose: NotificationPurpose
    target: str
    text: str
    correlation_id: str | None = None
    # Slack: post into the ticket's thread (its announcement), once that exists.
    in_thread: bool = False
    # Slack: the thread of a customer's own Slack conversation (Slack Connect).
    thread_ts: str | None = None
    # Customer channels: where and how to answer.
    route: ReplyRoute | None = None
    subject: str | None = None
    # RFC 3834 marks on the email (acknowledgements).
    automatic: bool = False
    # Web chat: the message's ID and time, as the chat frame shows them.
    message_id: str | None = None
    at: str | None = None

    @property
    def channel(self) -> str:
        return self.target.partition(":")[0]

    @property
    def address(self) -> str:
        return self.target.partition(":")[2]


@dataclass(frozen=True)
class TicketContext:
    """What the read model knows of an event's ticket (the router wrote it before publishing)."""

    team: str | None = None
    opened_by: str | None = None
    assignee_slack_user_id: str | None = None


@dataclass
class NotifierView:
    tickets: dict[str, TicketContext] = field(default_factory=dict)
    # Email addresses that bounced.
    undeliverable: set[str] = field(default_factory=set)


def team_of(team_id: str | None, config: DeskConfig) -> Team:
    """The ticket's team; one since removed from the config falls back to the default team."""
    team = next((team for team in config.teams if team.id == team_id), None)
    return team or config.team(config.default_classification.team)


def plan(event: TicketEvent, view: NotifierView, config: DeskConfig) -> list[Delivery]:
    """The deliveries `event` causes. Acknowledgements are planned here and limited per contact and
    hour where they are sent (the limit must hold across batches and instances)."""
    ticket = view.tickets.get(event.ticket_id, TicketContext())
    match event:
        case TicketCreated():
            return _acknowledgement(event, view, config)
        case TicketAssigned():
            return _announcement(event, config)
        case MessageAdded(author="agent"):
            return [*_reply(event, view), _mirror(event, agent_reply_text(event), config, ticket)]
        case MessageAdded() if event.correlation_id != ticket.opened_by:
            # The opening message is quoted in the announcement; later ones go to the thread.
            return [_mirror(event, customer_message_text(event), config, ticket)]
        case SlaWarning() | SlaBreached():
            team = team_of(ticket.team, config)
            lead = config.agent(team.lead).slack_user_id if team.lead else None
            mention = lead if isinstance(event, SlaBreached) and lead else ticket.assignee_slack_user_id
            return [
                Delivery(
                    key=f"{event.event_id}:sla",
                    ticket_id=event.ticket_id,
                    purpose="sla",
                    target=f"slack:{team.slack_channel}",
                    text=sla_text(event, mention),
                    correlation_id=event.correlation_id,
                    in_thread=True,
                )
            ]
    return []


def _acknowledgement(created: TicketCreated, view: NotifierView, config: DeskConfig) -> list[Delivery]:
    route = created.reply_route
    if route is None or not created.acknowledge or route.channel == "chat":
        # Web chat shows the ticket ID in its session frame: that is its acknowledgement.
        return []
    if route.channel == "email" and (
        is_no_reply_address(route.address) or normalise_email(route.address) in view.undeliverable
    ):
        return []
    templates = config.acknowledgements
    fields = {
        "ticket_id": created.ticket_id,
        "name": created.contact.name or "there",
        "subject": created.subject or "your request",
    }
    text = {"email": templates.email_body, "telegram": templates.telegram, "slack": templates.slack}.get(
        route.channel, templates.telegram
    )
    return [
        Delivery(
            key=f"{created.event_id}:ack",
            ticket_id=created.ticket_id,
            purpose="acknowledgement",
            target=f"{route.channel}:{route.address}",
            text=text.format(**fields),
            correlation_id=created.correlation_id,
            thread_ts=route.reply_to_id if route.channel == "slack" else None,
            route=route,
            subject=templates.email_subject.format(**fields),
            automatic=True,
        )
    ]


def _announcement(assigned: TicketAssigned, config: DeskConfig) -> list[Delivery]:
    team = team_of(assigned.team, config)
    common = {"ticket_id": assigned.ticket_id, "correlation_id": assigned.correlation_id}
    return [
        Delivery(
            key=f"{assigned.event_id}:channel",
            purpose="announcement",
            target=f"slack:{team.slack_channel}",
            text=assignment_text(assigned, assigned.excerpt),
            **common,
        ),
        Delivery(
            key=f"{assigned.event_id}:dm",
            purpose="assignment_dm",
            target=f"slack:{assigned.slack_user_id}",
            text=assignment_dm_text(assigned),
            **common,
        ),
    ]


def _reply(reply: MessageAdded, view: NotifierView) -> list[Delivery]:
    route = reply.reply_route
    if route is None:
        return []
    if route.channel == "email" and normalise_email(route.address) in view.undeliverable:
        return []
    return [
        Delivery(
            key=str(reply.event_id),
            ticket_id=reply.ticket_id,
            purpose="reply",
            target=f"{route.channel}:{route.address}",
            text=reply.text,
            correlation_id=reply.correlation_id,
            thread_ts=route.reply_to_id if route.channel == "slack" else None,
            route=route,
            subject=reply_subject(reply.ticket_id, route.subject),
            message_id=str(reply.message_id),
            at=reply.received_at.isoformat(),
        )
    ]


def _mirror(event: MessageAdded, text: str, config: DeskConfig, ticket: TicketContext) -> Delivery:
    return Delivery(
        key=f"{event.event_id}:mirror",
        ticket_id=event.ticket_id,
        purpose="mirror",
        target=f"slack:{team_of(ticket.team, config).slack_channel}",
        text=text,
        correlation_id=event.correlation_id,
        in_thread=True,
    )
