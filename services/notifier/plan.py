"""What the notifier sends for each ticket event, in pure code.

`plan` turns a ticket event and what is known about its ticket into `Delivery`s: the
acknowledgement to the customer; the ticket's card in the team channel (the root of its Slack
thread there; a ticket assigned or queued to another team gets one in that team's channel) and in
the assignee's DM; agent replies on the customer's channel (internal notes never),
mirrors into the ticket's thread of what was not written there, and what shows a reply's fate to
its agent (`reply_outcome`); refused commands shown to their agent alone; SLA warnings; rating
requests (CSAT) once per resolution, and low ratings to the team lead. Card updates are planned per
batch (`card_updates`). Each delivery has an idempotency key derived from the event, so a
redelivered event plans the very same deliveries and none is sent twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from services.notifier import csat_asks
from services.notifier.contact_suggestions import suggestion_text
from services.notifier.email_out import is_no_reply_address, reply_subject
from services.notifier.slack_text import (
    agent_message_text,
    assignment_dm_text,
    assignment_text,
    customer_message_text,
    duplicate_text,
    escalation_text,
    queued_text,
    sla_text,
    undelivered_text,
)
from shared import i18n
from shared.config import DeskConfig, Team
from shared.csat import CsatSubject
from shared.events import (
    CommandRejected,
    CsatRated,
    DuplicateSuggested,
    MergeSuggested,
    MessageAdded,
    MessageStatusReported,
    NotificationPurpose,
    ReplyRoute,
    SlaBreached,
    SlaEscalated,
    SlaWarning,
    StatusChanged,
    TicketAssigned,
    TicketCreated,
    TicketEvent,
    TicketQueued,
    TicketSuggestions,
)
from shared.identities import normalise_email
from shared.whatsapp_window import in_window, window_closed_text


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
    # Slack: acts on the ticket's card in `target` (the thread root in the team channel, the DM card).
    on_card: bool = False
    # Slack: an ephemeral message seen by this user only (in the channel of `target`).
    user: str | None = None
    # Slack: the reaction to add to the message `message_ts` of `target`.
    reaction: str | None = None
    message_ts: str | None = None
    # A rating request (CSAT): what the customer rates.
    csat: CsatSubject | None = None
    # A merge suggestion: the ticket's contact and the other one (its buttons name both).
    contacts: tuple[str, str] | None = None
    # Customer channels: the customer's language (a catalogue's locale) and IANA time zone, for what the
    # transport writes itself (the rating request's email).
    language: str | None = None
    timezone: str | None = None
    # An acknowledgement to an address nobody proved (typed into the web form): limited harder.
    claimed: bool = False

    @property
    def channel(self) -> str:
        return self.target.partition(":")[0]

    @property
    def address(self) -> str:
        return self.target.partition(":")[2]

    @property
    def digestible(self) -> bool:
        """Whether a held target may send it as a line of a digest: plain posts only (a card, an update,
        a reaction, an ephemeral message or a rating request must stay what it is)."""
        return self.purpose in ("mirror", "sla", "reply", "acknowledgement")


@dataclass(frozen=True)
class TicketContext:
    """What the read model knows of an event's ticket (the router wrote it before publishing)."""

    team: str | None = None
    opened_by: str | None = None
    assignee_slack_user_id: str | None = None
    # The customer's language (None: the desk's default) and IANA time zone, as the ticket records them.
    customer_language: str | None = None
    customer_timezone: str | None = None
    # The team channels holding a card of the ticket ("slack:C0SUPPORT"), as the notifier's ledger knows them.
    cards: tuple[str, ...] = ()


@dataclass
class NotifierView:
    tickets: dict[str, TicketContext] = field(default_factory=dict)
    # Email addresses that bounced.
    undeliverable: set[str] = field(default_factory=set)
    # The identities a channel proved, of the contacts of web-form tickets being acknowledged (issue #16).
    verified: dict[str, frozenset[str]] = field(default_factory=dict)
    # The public help centre's links (services/knowledge): an article's URL by slug, a ticket's signed
    # "this solved it" URL (None: suggested articles are not sent to customers).
    article_url: Callable[[str], str] | None = None
    deflection_url: Callable[[str], str] | None = None


def team_texts(team_id: str | None, config: DeskConfig) -> i18n.Texts:
    """The texts of the ticket's team's language (`teams[].language`, else the desk's)."""
    return i18n.texts(config.team_locale(team_of(team_id, config)))


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
        case TicketQueued():
            return [_queued_card(event, config)]
        case MessageAdded(author="agent"):
            return _agent_message(event, view, config, ticket)
        case MessageAdded() if event.correlation_id != ticket.opened_by:
            # The opening message is quoted in the announcement; later ones go to the thread.
            return [_mirror(event, customer_message_text(event, team_texts(ticket.team, config)), config, ticket)]
        case SlaWarning() | SlaBreached():
            team = team_of(ticket.team, config)
            lead = slack_user(team.lead, config)
            mention = lead if isinstance(event, SlaBreached) and lead else ticket.assignee_slack_user_id
            text = sla_text(event, mention, team_texts(team.id, config))
            return [_thread_post(event, "sla", "sla", team.id, text, config)]
        case SlaEscalated():
            team = team_of(ticket.team, config)
            text = escalation_text(event, team_texts(team.id, config))
            posts = [_thread_post(event, "sla", "sla", team.id, text, config)]
            return posts + [
                Delivery(
                    key=f"{event.event_id}:sla:{channel}",
                    ticket_id=event.ticket_id,
                    purpose="sla",
                    target=f"slack:{channel}",
                    text=text,
                    correlation_id=event.correlation_id,
                )
                for channel in event.notify_channels
                if channel != team.slack_channel
            ]
        case DuplicateSuggested():
            texts = team_texts(ticket.team, config)
            text = duplicate_text(event.duplicate_ticket_id, event.ticket_id, event.score, texts)
            return [_thread_post(event, "duplicate", "mirror", ticket.team or "", text, config)]
        case CommandRejected(origin=origin) if origin is not None:
            return [_ephemeral(f"{event.event_id}:rejection", event, origin.user_id, origin.channel_id, event.reason)]
        case StatusChanged(csat_route=route) if route is not None:
            return _csat_request(event, route, view, ticket, config)
        case CsatRated() if event.score <= csat_asks.LOW_SCORE:
            team = team_of(event.team, config)
            mention = slack_user(team.lead, config) or slack_user(event.assignee_id, config)
            text = csat_asks.low_score_text(event.ticket_id, event.score, event.comment, mention)
            return [_thread_post(event, "low-score", "csat", event.team, text, config)]
        case TicketSuggestions(deflect_route=route) if route is not None:
            return _suggested_articles(event, route, view, config, ticket.customer_language or config.desk_locale)
        case MessageStatusReported(status="failed", purpose="reply" | "csat"):
            # The customer's channel took the message and then could not deliver it: the agent must know.
            why = f": {event.error}" if event.error else ""
            text = f":warning: {undelivered_text(f'{event.channel} could not deliver it{why}')}"
            return [_thread_post(event, "status-failed", "mirror", ticket.team, text, config)]
        case MergeSuggested():
            post = _thread_post(event, "merge", "merge_suggestion", ticket.team, suggestion_text(event), config)
            return [replace(post, contacts=(event.contact_id, event.other_contact_id))]
    return []


def _acknowledgement(created: TicketCreated, view: NotifierView, config: DeskConfig) -> list[Delivery]:
    route = created.reply_route
    if route is None or not created.acknowledge or route.channel == "chat":
        # Web chat shows the ticket ID in its session frame: that is its acknowledgement.
        return []
    # Outside WhatsApp's window only a paid template could reach the customer: an acknowledgement is not worth one.
    if unreachable(route, created.occurred_at, view, config, automatic=True) is not None:
        return []
    locale = created.customer_language or config.desk_locale
    text, subject = acknowledgement_texts(created, route.channel, locale, config)
    return [
        _to_customer(
            created,
            f"{created.event_id}:ack",
            "acknowledgement",
            route,
            text,
            subject=subject,
            automatic=True,
            language=locale,
            timezone=created.customer_timezone,
            claimed=_claimed(created, route, view),
        )
    ]


def _claimed(created: TicketCreated, route: ReplyRoute, view: NotifierView) -> bool:
    """Whether the acknowledgement goes to an address nobody proved: typed into the web form (anyone may type
    anyone's), and never proved by its contact on a channel (a mail from it). SPEC §4: typed-in addresses get
    fewer automatic mails than verified channels."""
    if created.channel != "form":
        return False
    proved = view.verified.get(created.contact.contact_id, frozenset())
    return f"{route.channel}:{normalise_email(route.address)}" not in proved


def acknowledgement_texts(created: TicketCreated, channel: str, locale: str, config: DeskConfig) -> tuple[str, str]:
    """The acknowledgement's text and email subject in `locale`: the config's template for that language
    (`acknowledgements.languages`, the top-level ones for the desk's default language), else the catalogue's."""
    texts = i18n.texts(locale)
    templates = config.acknowledgements

    def template(key: str) -> str:
        return templates.template(key, texts.locale, config.desk_locale) or texts(f"ack.{key}")

    fields = {
        # A duplicate merged at birth: the customer is told the ticket their message joined.
        "ticket_id": created.merged_into or created.ticket_id,
        "name": created.contact.name or texts("ack.name_unknown"),
        "subject": created.subject or texts("ack.subject_unknown"),
    }
    # Channels without a template of their own (Telegram-like chats) get Telegram's.
    key = {"email": "email_body", "slack": "slack", "whatsapp": "whatsapp", "wecom": "wecom"}.get(channel, "telegram")
    if created.merged_into:
        key = "merged"
    return template(key).format(**fields), template("email_subject").format(**fields)


def _announcement(assigned: TicketAssigned, config: DeskConfig) -> list[Delivery]:
    """The card in the team channel (a ticket has one there: a reassignment updates it in place) and in the
    new assignee's DM."""
    team = team_of(assigned.team, config)
    common = {"ticket_id": assigned.ticket_id, "correlation_id": assigned.correlation_id}
    announcement = Delivery(
        key=f"{assigned.event_id}:channel",
        purpose="announcement",
        target=f"slack:{team.slack_channel}",
        text=assignment_text(assigned, assigned.excerpt, team_texts(team.id, config)),
        **common,
    )
    return [
        announcement,
        Delivery(
            key=f"{assigned.event_id}:dm",
            purpose="assignment_dm",
            target=f"slack:{assigned.slack_user_id}",
            text=assignment_dm_text(assigned, team_texts(team.id, config)),
            **common,
        ),
    ]


def _queued_card(queued: TicketQueued, config: DeskConfig) -> Delivery:
    """The card in the channel of the team whose queue the ticket joined: posted there when that channel has
    none yet (a ticket handed to another team; it becomes that channel's thread), else updated in place."""
    team = team_of(queued.team, config)
    return Delivery(
        key=f"{queued.event_id}:channel",
        ticket_id=queued.ticket_id,
        purpose="announcement",
        target=f"slack:{team.slack_channel}",
        text=queued_text(queued.ticket_id, team.name, team_texts(team.id, config)),
        correlation_id=queued.correlation_id,
    )


def _agent_message(
    event: MessageAdded, view: NotifierView, config: DeskConfig, ticket: TicketContext
) -> list[Delivery]:
    """A reply goes to the customer (an internal note never does); what was not typed in the ticket's
    thread (a modal, the CLI) is mirrored there; a reply that cannot be made is shown at once."""
    deliveries: list[Delivery] = []
    failure = None
    if not event.internal:
        reply = _reply(event, view, config)
        if isinstance(reply, Delivery):
            deliveries.append(reply)
        else:
            failure = reply
    if typed_in_thread(event):
        if failure is not None:
            deliveries += reply_outcome(event, failure, config, ticket)
        return deliveries
    texts = team_texts(ticket.team, config)
    text = agent_message_text(event, _agent_name(event.agent_id, config), texts)
    if failure is not None:
        text += f"\n:warning: {undelivered_text(failure, texts)}"
    deliveries.append(_mirror(event, text, config, ticket))
    return deliveries


def typed_in_thread(event: MessageAdded) -> bool:
    return event.origin is not None and event.origin.message_ts is not None and event.origin.channel_id is not None


def reply_outcome(
    event: MessageAdded, failure: str | None, config: DeskConfig, ticket: TicketContext
) -> list[Delivery]:
    """What shows an agent's reply's fate: on the agent's own thread message a ✅ once delivered, or ⚠️
    and an ephemeral message saying why not; a reply from elsewhere (the CLI) that failed gets a
    warning in the ticket's thread. `failure`: None when delivered, else why not."""
    origin = event.origin
    texts = team_texts(ticket.team, config)
    if origin is not None and origin.message_ts and origin.channel_id:
        common = {
            "ticket_id": event.ticket_id,
            "purpose": "reaction",
            "target": f"slack:{origin.channel_id}",
            "correlation_id": event.correlation_id,
            "message_ts": origin.message_ts,
        }
        if failure is None:
            return [
                Delivery(key=f"{event.event_id}:delivered", text="delivered", reaction="white_check_mark", **common)
            ]
        return [
            Delivery(key=f"{event.event_id}:undelivered", text=failure, reaction="warning", **common),
            _ephemeral(
                f"{event.event_id}:why", event, origin.user_id, origin.channel_id, undelivered_text(failure, texts)
            ),
        ]
    if failure is None:
        return []
    text = f":warning: {undelivered_text(failure, texts)}"
    return [_thread_post(event, "undelivered", "mirror", ticket.team, text, config)]


def unreachable(
    route: ReplyRoute | None, at: datetime, view: NotifierView, config: DeskConfig, *, automatic: bool = False
) -> str | None:
    """Why a message sent at `at` on the customer's channel `route` cannot reach them, for the agent; None when
    it can. Unreachable: no route; an email address that bounced (`view.undeliverable`); on WhatsApp, outside
    the 24-hour customer-service window (shared/whatsapp_window.py); for an `automatic` message
    (acknowledgement, suggested articles), also a no-reply email address (RFC 3834: no automatic answers
    to automatic mail)."""
    if route is None:
        return "the ticket has no channel to answer the customer on"
    if route.channel == "email":
        if normalise_email(route.address) in view.undeliverable:
            return f"mail to {route.address} bounced; nothing more is sent to that address"
        if automatic and is_no_reply_address(route.address):
            return f"{route.address} is a no-reply address; automatic messages are not sent to it"
    if route.channel == "whatsapp" and not in_window(route.customer_wrote_at, at):
        template = config.whatsapp.template
        return window_closed_text(route.customer_wrote_at, (template.name, template.language) if template else None)
    return None


def _reply(reply: MessageAdded, view: NotifierView, config: DeskConfig) -> Delivery | str:
    """The reply on the customer's channel, or why there is none (a WhatsApp reply outside the
    customer-service window is held: shared/whatsapp_window.py)."""
    route = reply.reply_route
    why_not = unreachable(route, reply.occurred_at, view, config)
    if why_not is not None:
        return why_not
    assert route is not None  # unreachable() names a missing route
    return _to_customer(
        reply,
        str(reply.event_id),
        "reply",
        route,
        reply.text,
        subject=reply_subject(reply.ticket_id, route.subject),
        message_id=str(reply.message_id),
        at=reply.received_at.isoformat(),
    )


def _csat_request(
    changed: StatusChanged, route: ReplyRoute, view: NotifierView, ticket: TicketContext, config: DeskConfig
) -> list[Delivery]:
    """Once per resolution (the key is the solving change's), on the customer's own channel, in their language."""
    locale = ticket.customer_language or config.desk_locale
    if unreachable(route, changed.occurred_at, view, config) is not None:
        return []
    return [
        _to_customer(
            changed,
            f"{changed.event_id}:csat",
            "csat",
            route,
            csat_asks.request_text(changed.ticket_id, locale),
            subject=reply_subject(changed.ticket_id, route.subject),
            csat=CsatSubject(changed.ticket_id, changed.resolution),
            language=locale,
            timezone=ticket.customer_timezone,
        )
    ]


def _suggested_articles(
    event: TicketSuggestions, route: ReplyRoute, view: NotifierView, config: DeskConfig, locale: str
) -> list[Delivery]:
    """The suggested articles on the customer's channel, after the acknowledgement, with a "this solved it" link
    (knowledge_base.deflect_channels); in `locale`, the ticket's customer language (issue 15)."""
    if view.article_url is None or view.deflection_url is None:
        return []
    if unreachable(route, event.occurred_at, view, config, automatic=True) is not None:
        return []
    return [
        _to_customer(
            event,
            f"{event.event_id}:suggestions",
            "suggestions",
            route,
            suggestions_text(event, view.article_url, view.deflection_url, locale),
            subject=reply_subject(event.ticket_id, route.subject),
            automatic=True,
            language=i18n.texts(locale).locale,
        )
    ]


def suggestions_text(
    event: TicketSuggestions, article_url: Callable[[str], str], deflection_url: Callable[[str], str], locale: str
) -> str:
    """The message of suggested articles in `locale`: one line per article, then the "this solved it" link; every
    link opens its page in the same language (`?lang=`)."""
    texts = i18n.texts(locale)
    lang = urlencode({"lang": texts.locale})
    count = len(event.articles)
    articles = "\n".join(
        texts("kb.suggestions.article", title=article.title, url=f"{article_url(article.slug)}?{lang}")
        for article in event.articles
    )
    link = f"{deflection_url(event.ticket_id)}?{lang}"
    solved = texts.plural("kb.suggestions.solved", count, ticket_id=event.ticket_id, link=link)
    return f"{texts.plural('kb.suggestions.intro', count)}\n{articles}\n\n{solved}"


def _to_customer(
    event: TicketEvent, key: str, purpose: NotificationPurpose, route: ReplyRoute, text: str, **fields: Any
) -> Delivery:
    """A message on the customer's own channel `route` (on Slack, in their conversation's thread: Slack
    Connect), made once per `key`; `fields` are the rest of the Delivery (subject, language…)."""
    return Delivery(
        key=key,
        ticket_id=event.ticket_id,
        purpose=purpose,
        target=f"{route.channel}:{route.address}",
        text=text,
        correlation_id=event.correlation_id,
        thread_ts=route.reply_to_id if route.channel == "slack" else None,
        route=route,
        **fields,
    )


def _ephemeral(key: str, event: TicketEvent, user_id: str, channel_id: str | None, text: str) -> Delivery:
    """A message only `user_id` sees, where they are; with no channel known, in their DM with the bot."""
    return Delivery(
        key=key,
        ticket_id=event.ticket_id,
        purpose="rejection",
        target=f"slack:{channel_id or user_id}",
        text=text,
        correlation_id=event.correlation_id,
        user=user_id if channel_id else None,
    )


def _agent_name(agent_id: str | None, config: DeskConfig) -> str:
    agent = next((agent for agent in config.agents if agent.id == agent_id), None)
    return agent.name if agent else agent_id or "an agent"


def slack_user(agent_id: str | None, config: DeskConfig) -> str | None:
    agent = next((agent for agent in config.agents if agent.id == agent_id), None)
    return agent.slack_user_id if agent else None


def _mirror(event: MessageAdded, text: str, config: DeskConfig, ticket: TicketContext) -> Delivery:
    return _thread_post(event, "mirror", "mirror", ticket.team, text, config)


def _thread_post(
    event: TicketEvent, suffix: str, purpose: NotificationPurpose, team_id: str, text: str, config: DeskConfig
) -> Delivery:
    """A post in the ticket's thread (its card) in `team_id`'s channel, made once per event and `suffix`."""
    return Delivery(
        key=f"{event.event_id}:{suffix}",
        ticket_id=event.ticket_id,
        purpose=purpose,
        target=f"slack:{team_of(team_id, config).slack_channel}",
        text=text,
        correlation_id=event.correlation_id,
        in_thread=True,
    )
