"""Versioned event schemas carried on Kafka.

Every ticket event shares one envelope (event ID, type, version, occurred-at, ticket ID, correlation
and trace context). `InboundMessage` travels on the inbound topic; the `TicketEvent` union on the
ticket topic is the ticket's audit trail, keyed by ticket ID. `MessageQuarantined` belongs to no
ticket: it has an envelope of its own, keyed by message ID.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from shared.ids import AGENT_ID_PATTERN, TICKET_ID_PATTERN

TicketId = Annotated[str, Field(pattern=TICKET_ID_PATTERN)]
# "phone": a call an agent logged (services/intake/phone_calls.py); "whatsapp": the WhatsApp Cloud API.
Channel = Literal["form", "email", "chat", "telegram", "slack", "wecom", "whatsapp", "phone"]
# An InboundMessage's `source` on the phone channel: "call:<agent ID>", the agent who took the call.
CALL_SOURCE_PREFIX = "call:"
# What an inbound message is: only "message" and "edit" come from a person; the rest are machine mail.
MessageKind = Literal["message", "edit", "auto_reply", "bounce", "complaint"]
# What a quarantined message is: machine mail, our own mail come back ("loop"), or a public endpoint's post
# judged to come from a bot ("spam", services/intake/spam.py).
QuarantineKind = Literal["auto_reply", "bounce", "complaint", "loop", "spam"]
# Bounds of a quarantined message's header-like fields and of its text excerpt, in characters.
QUARANTINE_FIELD_CHARS = 1000
QUARANTINE_EXCERPT_CHARS = 4000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def valid_traceparent(header: str | None) -> str | None:
    """A W3C traceparent worth carrying on, or None: a malformed one is dropped, never an error."""
    return header if header and TRACEPARENT.match(header.strip().lower()) else None


class Envelope(_Model):
    event_id: UUID
    version: Literal[1] = 1
    occurred_at: AwareDatetime
    ticket_id: TicketId
    # The ID of whatever set this chain of events off (the inbound message), for tracing a ticket's story.
    correlation_id: str | None = None
    # W3C trace context, so a trace follows the message across services.
    traceparent: str | None = None


# Intake validates addresses where they enter (RFC 5322 via email-validator, e.g. FormSubmission);
# events only check the shape, so that every consumer does not pay for full validation again.
Email = Annotated[str, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$", max_length=320)]


class Sender(_Model):
    """Who wrote, with every identity the channel proved; the router maps them to one contact."""

    name: str | None = None
    email: Email | None = None
    phone: str | None = None
    telegram_user_id: int | None = None
    telegram_username: str | None = None
    slack_user_id: str | None = None
    # WeChat Customer Service (WeCom kf): the customer's `external_userid`, which WeCom proves.
    wecom_external_userid: str | None = Field(default=None, max_length=128)


class Attachment(_Model):
    """A file stored by content hash under DATA_DIR/attachments; events carry only this reference."""

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    filename: str | None = None
    content_type: str
    size: int = Field(ge=0)
    inline: bool = False
    content_id: str | None = None


class ReplyRoute(_Model):
    """Where a reply to the customer goes, on the channel they wrote from."""

    channel: Channel
    # Email address, Telegram chat ID, Slack channel ID, web-chat ticket, or for WeCom
    # "<open_kfid>:<external_userid>" (the customer-service account and the customer).
    address: str
    # The message a reply answers: email Message-ID, Telegram message_id, Slack thread ts.
    reply_to_id: str | None = None
    # Email only: the thread's Message-IDs for References, and the subject replies continue.
    references: list[str] = []
    subject: str | None = None
    # WhatsApp only: when the customer last wrote, which opens the 24-hour customer-service window
    # (shared/whatsapp_window.py); None when they never wrote there (a logged call's phone number).
    customer_wrote_at: AwareDatetime | None = None


class InboundMessage(Envelope):
    """A customer message from any channel, normalised by intake."""

    type: Literal["inbound.message"] = "inbound.message"
    version: Literal[1, 2] = 2
    message_id: UUID
    channel: Channel
    kind: MessageKind = "message"
    # The channel's own ID of the message (Message-ID, update_id, form idempotency key ...).
    channel_message_id: str
    source: str = Field(description="Which entry point took it, e.g. the form ID or mailbox.")
    sender: Sender
    subject: str | None = None
    text: str
    html: str | None = None
    attachments: list[Attachment] = []
    # The message exactly as received (e.g. the .eml), when the channel has such a thing.
    original: Attachment | None = None
    reply_route: ReplyRoute | None = None
    # For kind "edit": the channel_message_id of the message this one replaces.
    edit_of: str | None = None
    # For kind "bounce": the addresses that could not be delivered to.
    bounced_recipients: list[str] = []
    # False when an automatic acknowledgement could feed a loop (e.g. a forwarded bounce).
    acknowledge: bool = True
    received_at: AwareDatetime
    # Since version 2, what intake indexed for this message, so that `switchboard replay` rebuilds
    # it: the channel message's idempotency key ("telegram:update:42") and the conversations that
    # lead to the ticket from now on ("email:<Message-ID>", "telegram:chat:7", "chat-session:<hash>").
    idempotency_key: str | None = None
    conversations: list[str] = []
    # The thread led to a closed ticket: this message opens a new ticket that follows up on that one.
    follow_up_of: TicketId | None = None
    # The language the channel says the customer uses (a BCP 47 tag such as "en-GB": email
    # Content-Language), tried before detection; and the addresses an email was written to (To, Cc).
    language_hint: str | None = None
    to_addresses: list[str] = []
    # What the customer picked on the page (the language switch; a BCP 47 tag such as "zh-Hans"): their
    # language before any hint (shared/i18n.py `choose`); and their IANA time zone, when their browser told.
    customer_language: str | None = Field(default=None, max_length=64)
    customer_timezone: str | None = Field(default=None, max_length=64)

    @classmethod
    def received(
        cls,
        *,
        message_id: UUID,
        ticket_id: str,
        received_at: datetime,
        occurred_at: datetime | None = None,
        **fields: Any,
    ) -> InboundMessage:
        """A new inbound message: its ID names the event and starts the ticket's correlation chain."""
        return cls(
            event_id=message_id,
            occurred_at=occurred_at or received_at,
            ticket_id=ticket_id,
            correlation_id=str(message_id),
            message_id=message_id,
            received_at=received_at,
            **fields,
        )


class MessageQuarantined(_Model):
    """Input kept aside instead of reaching a ticket, with why; an operator lists it (SPEC §3: machine
    mail that matches no ticket is kept, original + an event with the reason).

    On the quarantine topic, keyed by message ID. `reason_code` is short and machine-readable
    (`machine_mail_no_ticket`, `own_mail_loop`); `reason` says the same to a person.
    """

    type: Literal["message.quarantined"] = "message.quarantined"
    event_id: UUID
    version: Literal[1] = 1
    occurred_at: AwareDatetime
    # The ID the message would have had on a ticket: the same channel message always gets the same one.
    message_id: UUID
    channel: Channel
    # The channel's own ID of the message (the email Message-ID ...), for finding it in the channel's logs.
    channel_message_id: str = Field(max_length=QUARANTINE_FIELD_CHARS)
    kind: QuarantineKind
    reason_code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    reason: str = Field(max_length=QUARANTINE_FIELD_CHARS)
    # Which entry point took it, e.g. "smtp" or "imap:INBOX".
    source: str = Field(max_length=QUARANTINE_FIELD_CHARS)
    sender: Sender
    subject: str | None = Field(default=None, max_length=QUARANTINE_FIELD_CHARS)
    # The start of the message's text; the whole message is in `original`.
    excerpt: str = Field(max_length=QUARANTINE_EXCERPT_CHARS)
    original: Attachment | None = None
    received_at: AwareDatetime
    correlation_id: str | None = None
    traceparent: str | None = None
    # Spam: the ticket ID the sender was answered with (reserved, so that a release makes it real, and
    # `switchboard replay` never hands it out again); no ticket exists until then.
    ticket_id: TicketId | None = None


class MessageReleased(_Model):
    """A quarantined message an agent released: it went on to the inbound topic as `inbound_message_id`,
    opening ticket `ticket_id` (issue #16). On the quarantine topic, keyed by the quarantined message's ID;
    a second release finds it and changes nothing."""

    type: Literal["message.released"] = "message.released"
    event_id: UUID
    version: Literal[1] = 1
    occurred_at: AwareDatetime
    message_id: UUID
    ticket_id: TicketId
    inbound_message_id: UUID
    # Who released it: an agent ID, or "admin" (`switchboard quarantine release`).
    actor: str = Field(min_length=1, max_length=100)
    correlation_id: str | None = None


# The quarantine topic's events.
QuarantineEvent = Annotated[MessageQuarantined | MessageReleased, Field(discriminator="type")]


# The lifecycle (SPEC §3 Lifecycle): new → open → pending (waiting on the customer) | on_hold (waiting
# on a third party) → solved → closed.
TicketStatus = Literal["new", "open", "pending", "on_hold", "solved", "closed"]
# Statuses in which a ticket is someone's work (in an agent's list or a team's queue; counts for capacity).
ACTIVE_STATUSES: frozenset[str] = frozenset({"new", "open", "pending", "on_hold"})
Priority = Literal["low", "normal", "high", "urgent"]
# Who caused a change: an agent ID from the config, "customer", "system" (timers: auto-close), or
# "admin" (`switchboard ticket` on the command line).
Actor = Annotated[str, Field(min_length=1, max_length=100)]
Tag = Annotated[str, Field(pattern=r"^[\w][\w:.-]{0,63}$")]
# A contact's tag ("vip", "trial"): a ticket tag's shape, lower-cased as given (classification rules and SLA
# policies match it as written in the config).
ContactTag = Annotated[Tag, AfterValidator(str.lower)]


class SlackOrigin(_Model):
    """Where in Slack an agent's command came from, so that its outcome is shown there: an ephemeral
    message to `user_id` in `channel_id` when it is refused, a reaction on `message_ts` (an agent's
    thread reply) once it reached the customer or could not."""

    user_id: str
    channel_id: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None


class CommandEnvelope(Envelope):
    """What an agent (or the system) asks to happen to a ticket, on the commands topic keyed by ticket ID.

    `event_id` is the command's ID: the same Slack interaction delivered twice carries the same one,
    and the router applies a command once. `agent_id` is an agent ID from the config, "admin" (the
    CLI), "system" (timers) or "customer" (a CSAT rating).
    """

    agent_id: Actor
    origin: SlackOrigin | None = None


class AgentReply(CommandEnvelope):
    """A public answer to the customer, on the customer's channel."""

    type: Literal["command.reply"] = "command.reply"
    text: str = Field(min_length=1, max_length=20_000)


class AgentNote(CommandEnvelope):
    """An internal note: recorded on the ticket and in its Slack thread, never sent to the customer."""

    type: Literal["command.note"] = "command.note"
    text: str = Field(min_length=1, max_length=20_000)


class ClaimTicket(CommandEnvelope):
    """The acting agent takes the ticket."""

    type: Literal["command.claim"] = "command.claim"


class AssignTicket(CommandEnvelope):
    """Hand the ticket to an agent (`to_agent`) or to a team's queue, unassigned (`to_team`); one of the two."""

    type: Literal["command.assign"] = "command.assign"
    to_agent: str | None = None
    to_team: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> AssignTicket:
        if (self.to_agent is None) == (self.to_team is None):
            raise ValueError("give exactly one of to_agent and to_team")
        return self


class SetStatus(CommandEnvelope):
    type: Literal["command.set_status"] = "command.set_status"
    status: Literal["open", "pending", "on_hold", "solved", "closed"]
    reason: str | None = Field(default=None, max_length=500)
    # Only for the resolution it names (`StatusChanged.resolution`): an auto-close timed for one
    # resolution must not close the ticket solved again since.
    resolution: int | None = Field(default=None, ge=1)


class SetPriority(CommandEnvelope):
    type: Literal["command.set_priority"] = "command.set_priority"
    priority: Priority


class TagTicket(CommandEnvelope):
    type: Literal["command.tag"] = "command.tag"
    add: list[Tag] = []
    remove: list[Tag] = []


class EscalateTicket(CommandEnvelope):
    """Raise the ticket to the next level of its team's escalation chain (`teams[].escalation`, at least the
    lead), or with `to_team`, hand it to that team's queue (a second-level team; its own team: back to
    the queue, unassigned)."""

    type: Literal["command.escalate"] = "command.escalate"
    reason: str | None = Field(default=None, max_length=500)
    to_team: str | None = None


class MergeTicket(CommandEnvelope):
    """Merge this ticket into `into_ticket_id`: this one is closed, the other carries on."""

    type: Literal["command.merge"] = "command.merge"
    into_ticket_id: TicketId


class RateTicket(CommandEnvelope):
    """The customer's satisfaction rating (CSAT) of one resolution of the ticket, 1 (bad) to 5 (great)."""

    type: Literal["command.rate"] = "command.rate"
    # Which resolution was rated (`StatusChanged.resolution` of the solving change).
    resolution: int = Field(ge=1)
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2_000)


class _ContactCommandEnvelope(_Model):
    """A command about contact `contact_id`, on the commands topic keyed by `contact_id`; `ticket_id` is the
    ticket the agent acted from (a refusal is shown there), when there is one."""

    event_id: UUID
    version: Literal[1] = 1
    occurred_at: AwareDatetime
    agent_id: Actor
    origin: SlackOrigin | None = None
    ticket_id: TicketId | None = None
    contact_id: str = Field(min_length=1, max_length=100)
    correlation_id: str | None = None
    traceparent: str | None = None


class MergeContacts(_ContactCommandEnvelope):
    """Merge contact `contact_id` into `into_contact_id` (which survives), by hand: the CLI or a suggestion's
    "Merge" button. Undone by `UnmergeContacts`."""

    type: Literal["command.merge_contacts"] = "command.merge_contacts"
    into_contact_id: str = Field(min_length=1, max_length=100)


class UnmergeContacts(_ContactCommandEnvelope):
    """Undo the merge of contact `contact_id` into its survivor: its identities and tickets go back to it."""

    type: Literal["command.unmerge_contacts"] = "command.unmerge_contacts"


class TagContact(_ContactCommandEnvelope):
    """Add and remove tags of contact `contact_id` (a merged contact: its survivor's tags), by hand: the CLI
    or `/sb tag`. Tags are lower-case words, as ticket tags."""

    type: Literal["command.tag_contact"] = "command.tag_contact"
    add: list[ContactTag] = []
    remove: list[ContactTag] = []


class KeepContactsApart(_ContactCommandEnvelope):
    """Contacts `contact_id` and `other_contact_id` are two people, whatever links them (a suggestion's "Keep
    apart" button): they are not suggested for a merge again. A manual merge still may join them."""

    type: Literal["command.keep_contacts_apart"] = "command.keep_contacts_apart"
    other_contact_id: str = Field(min_length=1, max_length=100)


ContactCommand = MergeContacts | UnmergeContacts | TagContact | KeepContactsApart

AgentCommand = Annotated[
    AgentReply
    | AgentNote
    | ClaimTicket
    | AssignTicket
    | SetStatus
    | SetPriority
    | TagTicket
    | EscalateTicket
    | MergeTicket
    | RateTicket
    | MergeContacts
    | UnmergeContacts
    | KeepContactsApart
    | TagContact,
    Field(discriminator="type"),
]
agent_command_adapter: TypeAdapter[AgentCommand] = TypeAdapter(AgentCommand)


class ContactSummary(_Model):
    contact_id: str
    name: str | None = None
    email: str | None = None
    # "email:…", "phone:+…", "telegram:…", "slack:…" (see shared.identities).
    identities: list[str] = []


class TicketCreated(Envelope):
    type: Literal["ticket.created"] = "ticket.created"
    channel: Channel
    subject: str | None
    contact: ContactSummary
    team: str
    category: str
    priority: str
    tags: list[str] = []
    reply_route: ReplyRoute | None = None
    acknowledge: bool = True
    # A customer wrote again on a closed ticket: this ticket follows up on that one.
    follow_up_of: TicketId | None = None
    # The classification's reading of the message (services/router/classification.py): its language
    # (ISO 639-1), flags ("negative", "urgent"), the skills an agent needs, and the rules that fired.
    language: str | None = None
    flags: list[str] = []
    skills: list[str] = []
    rules: list[str] = []
    # Born a duplicate of the contact's open ticket (services/router/duplicates.py): merged into that one by
    # the events that follow; the customer's acknowledgement names it.
    merged_into: TicketId | None = None
    # The contact's tags when the ticket was created (`contact.tags_changed`): rules and SLA policies match them.
    contact_tags: list[str] = []
    # The language every text to the customer is written in (a catalogue's locale, "zh-Hans"; shared/i18n.py
    # `choose`), where it came from ("picked", "hint", "detection", "default"), and the customer's IANA time
    # zone when known. None on tickets created before languages were chosen: the desk's default.
    customer_language: str | None = None
    customer_language_from: Literal["picked", "hint", "detection", "default"] | None = None
    customer_timezone: str | None = None


class MessageAdded(Envelope):
    type: Literal["ticket.message_added"] = "ticket.message_added"
    message_id: UUID
    # "system": machine mail (auto-replies, bounces, complaints) recorded on the ticket, never answered.
    author: Literal["customer", "agent", "system"]
    channel: Channel
    kind: MessageKind = "message"
    text: str
    html: str | None = None
    attachments: list[Attachment] = []
    sender: Sender | None = None
    # Set when a person other than the ticket's contact wrote: kept as a note for an agent to review.
    review: str | None = None
    edit_of: str | None = None
    # Customer messages: where replies go from now on. Agent messages: where this one is delivered.
    reply_route: ReplyRoute | None = None
    agent_id: str | None = None
    # Customer messages: the contact the sender's identities belong to.
    contact_id: str | None = None
    received_at: datetime
    # An agent's internal note: shown in Slack and the audit trail, never sent to the customer.
    internal: bool = False
    # Agent messages written in Slack: where, so that the outcome is shown on the agent's message.
    origin: SlackOrigin | None = None


class TicketAssigned(Envelope):
    type: Literal["ticket.assigned"] = "ticket.assigned"
    version: Literal[1, 2] = 2
    team: str
    agent_id: str
    agent_name: str
    slack_user_id: str
    # Carried so that notifications need no lookup that could race the read model.
    subject: str | None
    contact: ContactSummary
    # Since version 2: the ticket's channel and priority, and the start of its opening message.
    channel: Channel | None = None
    priority: str | None = None
    excerpt: str | None = None
    # Who assigned it (an agent claiming or handing on, "system" for the router's own assignment),
    # and whose it was before: the read model moves the ticket from that agent's list (or the team's queue).
    actor: str = "system"
    previous_agent_id: str | None = None
    # An agent claimed it (or was handed it) while at or over their capacity: the card says so.
    over_capacity: bool = False


# The SLA clocks (services/sla/clocks.py): first response, next response (the oldest unanswered customer
# message to the next public agent reply) and resolution (paused in the policy's `pause_on` statuses).
SlaMetric = Literal["first_response", "next_response", "resolution"]
SLA_METRICS: tuple[SlaMetric, ...] = ("first_response", "next_response", "resolution")


class SlaDeadlineSet(Envelope):
    """A clock runs and is due at `due_at`: started, resumed, or recomputed (`reason` says which)."""

    type: Literal["sla.deadline_set"] = "sla.deadline_set"
    version: Literal[1, 2] = 2
    metric: SlaMetric
    policy: str
    due_at: AwareDatetime
    # Since version 2: when warnings fire before the due time, so the timers can be rebuilt from the log.
    warnings_at: list[AwareDatetime] = []
    # "created", "customer wrote", "resumed", "priority changed to high", "policy changed" ...
    reason: str | None = None
    # The target (business or calendar time, per the policy) and what the clock used of it so far, seconds.
    target_seconds: float | None = None
    used_seconds: float = 0


class SlaWarning(Envelope):
    type: Literal["sla.warning"] = "sla.warning"
    metric: SlaMetric
    due_at: AwareDatetime
    fraction: float


class SlaBreached(Envelope):
    type: Literal["sla.breached"] = "sla.breached"
    metric: SlaMetric
    due_at: AwareDatetime


class SlaMet(Envelope):
    type: Literal["sla.met"] = "sla.met"
    metric: SlaMetric
    due_at: AwareDatetime | None
    met_at: AwareDatetime


class SlaPaused(Envelope):
    """The clock stopped counting (resolution in a `pause_on` status) with `used_seconds` of its target used."""

    type: Literal["sla.paused"] = "sla.paused"
    metric: SlaMetric
    used_seconds: float
    reason: str


class SlaEscalated(Envelope):
    """A level of the policy's escalation chain fired for a clock (once per clock and level): who is told
    (Slack users in the ticket's thread, Slack channels), and what the SLA service asked the router for."""

    type: Literal["sla.escalated"] = "sla.escalated"
    metric: SlaMetric
    level: int = Field(ge=1)
    # "at the warning", "at the breach", "30 minutes after the breach".
    trigger: str
    due_at: AwareDatetime
    notify_users: list[str] = []
    notify_channels: list[str] = []
    # What the router was asked for: "lead" (up the team's escalation chain), "queue" (back to the team's
    # queue) or a team ID (to that team's queue); and the priority asked for.
    reassigned_to: str | None = None
    raised_to: Priority | None = None


class SlaStopped(Envelope):
    """The clock ended unmet and unbreached for a reason other than meeting it (solved without an answer,
    closed, a policy that does not measure it)."""

    type: Literal["sla.stopped"] = "sla.stopped"
    metric: SlaMetric
    reason: str


class StatusChanged(Envelope):
    """The ticket moved along its lifecycle; `reason` says why ("customer replied", "merged into SB-1042")."""

    type: Literal["ticket.status_changed"] = "ticket.status_changed"
    from_status: TicketStatus
    to_status: TicketStatus
    actor: Actor
    reason: str | None = None
    # Carried for the read model's lists: the ticket's team and assignee (None: in the team's queue).
    team: str
    assignee_id: str | None = None
    # How many times the ticket has been solved, this change included (numbers the CSAT request).
    resolution: int = 0
    # Set when this change asks the customer for a rating: solved by an agent after a public reply, not
    # by a merge or auto-close. Where to ask (the customer's channel).
    csat_route: ReplyRoute | None = None


class PriorityChanged(Envelope):
    type: Literal["ticket.priority_changed"] = "ticket.priority_changed"
    from_priority: str
    to_priority: Priority
    actor: Actor


class TagsChanged(Envelope):
    type: Literal["ticket.tags_changed"] = "ticket.tags_changed"
    added: list[str] = []
    removed: list[str] = []
    # The ticket's tags after the change.
    tags: list[str]
    actor: Actor


class TicketQueued(Envelope):
    """The ticket waits, unassigned, in `team`'s queue (handed to a team, not an agent)."""

    type: Literal["ticket.queued"] = "ticket.queued"
    team: str
    actor: Actor
    previous_agent_id: str | None = None
    # Why it waits when the router queued it ("no member is eligible: ..."; "ana is away").
    reason: str | None = None
    # Who gets it first once eligible again: the agent it was taken from when they went away.
    preferred_agent_id: str | None = None


class TicketEscalated(Envelope):
    """Raised to `level` (1 = the first step of the team's chain) and handed to `agent_id` there."""

    type: Literal["ticket.escalated"] = "ticket.escalated"
    level: int = Field(ge=1)
    agent_id: str
    actor: Actor
    reason: str | None = None


class TicketMerged(Envelope):
    """This ticket was merged into `into_ticket_id` (it is closed by the same command)."""

    type: Literal["ticket.merged"] = "ticket.merged"
    into_ticket_id: TicketId
    actor: Actor


class DuplicateSuggested(Envelope):
    """A new ticket of the same contact may repeat this one (services/router/duplicates.py): shown to the
    agents in this ticket's thread, for them to merge or not."""

    type: Literal["ticket.duplicate_suggested"] = "ticket.duplicate_suggested"
    duplicate_ticket_id: TicketId
    # How alike the two are: 0 (nothing shared) … 1 (the same words).
    score: float = Field(ge=0, le=1)


class CommandRejected(Envelope):
    """A command the router refused, with why; shown to the agent who gave it (Slack: ephemeral)."""

    type: Literal["command.rejected"] = "command.rejected"
    command_id: UUID
    command_type: str
    agent_id: str
    reason: str
    origin: SlackOrigin | None = None


class CsatRated(Envelope):
    type: Literal["ticket.csat_rated"] = "ticket.csat_rated"
    resolution: int = Field(ge=1)
    score: int = Field(ge=1, le=5)
    comment: str | None = None
    # The ticket's team and assignee when rated (a low score pings the team lead in the thread).
    team: str
    assignee_id: str | None = None


# "reaction": the ✅/⚠️ on an agent's thread reply once it reached the customer or could not.
NotificationPurpose = Literal[
    "acknowledgement",
    "announcement",
    "assignment_dm",
    "mirror",
    "reply",
    "sla",
    "card_update",
    "rejection",
    "csat",
    "reaction",
    "merge_suggestion",
    "suggestions",
]


class NotificationSent(Envelope):
    """The notifier delivered something (to Slack, an email, a Telegram chat, a web chat).

    The record of what was already sent, so that nothing is sent twice even after Redis is lost,
    and of the thread-index keys that now lead back to the ticket (our Message-ID, Telegram's
    message ID of our message).
    """

    type: Literal["notification.sent"] = "notification.sent"
    # The delivery's idempotency key: "<event ID of the cause>:<purpose>".
    key: str
    purpose: NotificationPurpose
    # "slack:<channel>", "email:<address>", "telegram:<chat ID>", "chat:<ticket ID>", "whatsapp:<E.164 digits>".
    target: str
    # Slack ts, email Message-ID, Telegram message_id; None where the channel has none.
    external_id: str | None = None
    # Conversation keys (shared.conversations) that lead replies to this ticket from now on.
    conversations: list[str] = []
    # Sent as part of one digest message after Slack held the channel back (HTTP 429).
    digest: bool = False
    # An acknowledgement to an address nobody proved (the web form's): counted against the lower limits.
    claimed: bool = False
    # The messages the channel counted: a long WeCom text goes as several, each counted against WeChat's
    # per-window limit (shared/wecom_window.py), which replay rebuilds from this.
    messages: int = 1


# What WhatsApp says of a message we sent (the Cloud API's `statuses` webhook): in order of progress, or failed.
DeliveryStatus = Literal["sent", "delivered", "read", "failed"]


class MessageStatusReported(Envelope):
    """The customer's channel reported what became of a message we sent them (WhatsApp: sent, delivered,
    read, failed), recorded on the ticket's audit trail. Published by intake, on the tickets topic."""

    type: Literal["message.status_reported"] = "message.status_reported"
    channel: Channel
    # The channel's ID of our message (WhatsApp's wamid) and what was sent: the ticket message's ID for a
    # reply, else None (an acknowledgement); the delivery's purpose.
    external_id: str = Field(min_length=1, max_length=400)
    message_id: UUID | None = None
    purpose: NotificationPurpose | None = None
    status: DeliveryStatus
    # When the channel says it happened.
    status_at: AwareDatetime
    # For "failed": the channel's error, e.g. "131047 Re-engagement message".
    error: str | None = Field(default=None, max_length=1000)


# "email:ana@example.com", "phone:+34600123456", "telegram:42", "slack:U0CUST" (see shared.identities).
Identity = Annotated[str, Field(pattern=r"^[a-z]+:\S+$", max_length=400)]


class ContactEnvelope(_Model):
    """Events about contacts, keyed by the identity they concern ("email:ana@example.com")."""

    event_id: UUID
    version: Literal[1] = 1
    occurred_at: AwareDatetime
    identity: Identity
    # The ticket whose message caused the event, if any.
    ticket_id: TicketId | None = None
    correlation_id: str | None = None
    traceparent: str | None = None


class IdentityLinked(ContactEnvelope):
    """An identity now belongs to a contact; the first link of an identity wins, later ones are refused."""

    type: Literal["contact.identity_linked"] = "contact.identity_linked"
    contact_id: str
    # Proved by the channel (mail From, Telegram user, Slack user) rather than typed into a form or chat.
    verified: bool


class AddressUndeliverable(ContactEnvelope):
    """Mail to this address bounced: nothing more is sent to it (RFC 3464 report or plain-text bounce)."""

    type: Literal["contact.address_undeliverable"] = "contact.address_undeliverable"
    reason: str


class _ContactChange(_Model):
    """A change to contact `contact_id` as a whole; on the contacts topic keyed by `contact_id`, so that its
    changes stay in order."""

    event_id: UUID
    version: Literal[1] = 1
    occurred_at: AwareDatetime
    contact_id: str
    # Who: "system" (the router, on a message that proved it), an agent ID, or "admin" (the CLI).
    actor: Actor
    # The identity the change came through, if one (the topic's key field for identity events).
    identity: Identity | None = None
    ticket_id: TicketId | None = None
    correlation_id: str | None = None
    traceparent: str | None = None


class _ContactMergeEnvelope(_ContactChange):
    """A merge of contact `contact_id` into `survivor_id`, or its undoing (keyed by the merged contact, so
    that a merge and its unmerge stay in order)."""

    survivor_id: str
    # What moves (to the survivor on a merge, back on an unmerge): the merged contact's identities and
    # tickets, its own and those of contacts merged into it before.
    identities: list[str] = []
    tickets: list[str] = []


class ContactMerged(_ContactMergeEnvelope):
    """Contact `contact_id` now belongs to `survivor_id` (the older one on automatic merges): lookups of
    it, its identities and its tickets show the survivor. Reversible (`ContactUnmerged`)."""

    type: Literal["contact.merged"] = "contact.merged"


class ContactUnmerged(_ContactMergeEnvelope):
    """The merge of `contact_id` into `survivor_id` is undone: its identities and tickets are its own again."""

    type: Literal["contact.unmerged"] = "contact.unmerged"


class ContactTagsChanged(_ContactChange):
    """Contact `contact_id` (a survivor: a merged contact's tags are its survivor's) now has `tags`; `added`
    and `removed` are what changed."""

    type: Literal["contact.tags_changed"] = "contact.tags_changed"
    # Every tag after the change, sorted.
    tags: list[str]
    added: list[str] = []
    removed: list[str] = []


class ContactsKeptApart(_ContactChange):
    """An agent said contacts `contact_id` and `other_contact_id` are two people: no merge of the two is
    suggested again (`contact.merge_suggested`)."""

    type: Literal["contact.kept_apart"] = "contact.kept_apart"
    other_contact_id: str


ContactEvent = Annotated[
    IdentityLinked | AddressUndeliverable | ContactMerged | ContactUnmerged | ContactTagsChanged | ContactsKeptApart,
    Field(discriminator="type"),
]


class MergeSuggested(Envelope):
    """Two contacts look like one person but were not merged: shown to agents in the ticket's thread,
    whose message linked them through `identity`. `reason` says why it was not automatic: the link is
    only claimed (typed into a form or chat), or the two hold different verified identities of one
    channel (two Telegram users, two Slack users). On the tickets topic: the ticket's audit trail."""

    type: Literal["contact.merge_suggested"] = "contact.merge_suggested"
    # The newer contact, and the older one it would be merged into (as a message's merge keeps the older).
    contact_id: str
    other_contact_id: str
    identity: Identity
    reason: str


class ArticleSuggestion(_Model):
    """A knowledge-base article that may answer a ticket (services/knowledge/search.py): its BM25 score, the
    title and body tokens' weighted sum (higher: more of the question's rarer words)."""

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,99}$")
    title: str
    language: str
    score: float = Field(ge=0)


class TicketSuggestions(Envelope):
    """The articles that may answer a new ticket, best first (`knowledge_base.suggestions` at most, each
    scoring `knowledge_base.suggest_at` or more): shown on its Slack card with a "Send to customer" button.
    `deflect_route` is set when the ticket's channel is in `knowledge_base.deflect_channels`: the customer is
    sent them there with a "this solved it" link (services/knowledge/deflection.py)."""

    type: Literal["ticket.suggestions"] = "ticket.suggestions"
    articles: list[ArticleSuggestion] = Field(min_length=1)
    deflect_route: ReplyRoute | None = None


TicketEvent = Annotated[
    TicketCreated
    | MessageAdded
    | TicketAssigned
    | SlaDeadlineSet
    | SlaWarning
    | SlaBreached
    | SlaMet
    | SlaPaused
    | SlaStopped
    | SlaEscalated
    | StatusChanged
    | PriorityChanged
    | TagsChanged
    | TicketQueued
    | TicketEscalated
    | TicketMerged
    | DuplicateSuggested
    | CommandRejected
    | CsatRated
    | NotificationSent
    | MergeSuggested
    | TicketSuggestions
    | MessageStatusReported,
    Field(discriminator="type"),
]
ticket_event_adapter: TypeAdapter[TicketEvent] = TypeAdapter(TicketEvent)


class AgentAvailabilityChanged(_Model):
    """An agent went away or came back (`/sb away`, `/sb back`); on the agents topic, keyed by agent ID.
    Assignment skips agents who are away."""

    type: Literal["agent.availability_changed"] = "agent.availability_changed"
    event_id: UUID
    version: Literal[1] = 1
    occurred_at: AwareDatetime
    agent_id: Annotated[str, Field(pattern=AGENT_ID_PATTERN)]
    available: bool
    correlation_id: str | None = None
    traceparent: str | None = None


AgentEvent = Annotated[AgentAvailabilityChanged, Field(discriminator="type")]


ArticleSlug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,99}$")]


class _ArticleEnvelope(_Model):
    """A change of knowledge-base article `slug`, on the articles topic keyed by slug (services/knowledge)."""

    event_id: UUID
    version: Literal[1] = 1
    occurred_at: AwareDatetime
    slug: ArticleSlug
    # "import" (the knowledge_base folder), or the agent ID of whoever saved it from Slack.
    actor: Actor
    correlation_id: str | None = None
    traceparent: str | None = None


class ArticlePublished(_ArticleEnvelope):
    """Article `slug` as it is now (new or changed): the whole article, so that the topic alone rebuilds the
    knowledge base. `content_hash` (SHA-256 of title, language, tags, team and body) tells an unchanged
    article apart; `source` is where it came from (a file of the folder, or a solved ticket in Slack)."""

    type: Literal["article.published"] = "article.published"
    title: str = Field(min_length=1, max_length=300)
    language: str = Field(min_length=2, max_length=20)
    tags: list[str] = []
    team: str | None = None
    body: str = Field(max_length=200_000)
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    source: Literal["folder", "slack"]
    # Saved from Slack: the ticket whose answer it is.
    ticket_id: TicketId | None = None


class ArticleRemoved(_ArticleEnvelope):
    """Article `slug` is gone (its file was deleted from the folder)."""

    type: Literal["article.removed"] = "article.removed"


ArticleEvent = Annotated[ArticlePublished | ArticleRemoved, Field(discriminator="type")]


class WecomCursorAdvanced(_Model):
    """intake-http has every WeChat Customer Service message of account `open_kfid` up to `cursor` (the
    `next_cursor` of WeCom's kf/sync_msg) on the inbound topic. On the wecom topic keyed by `open_kfid`:
    the latest one per account is where the next sync starts, after a restart or a replay."""

    type: Literal["wecom.cursor_advanced"] = "wecom.cursor_advanced"
    event_id: UUID
    version: Literal[1] = 1
    occurred_at: AwareDatetime
    open_kfid: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
    cursor: str = Field(min_length=1, max_length=1024)


WecomEvent = Annotated[WecomCursorAdvanced, Field(discriminator="type")]


class DigestPosted(_Model):
    """The day's report digest (config `reports.digest`) was posted to Slack: the table as a message, the chart
    as a file. On the reports topic keyed by the day, so that the digest is posted once a day even after
    Redis is lost (`switchboard replay` restores the record of the days posted)."""

    type: Literal["report.digest_posted"] = "report.digest_posted"
    event_id: UUID
    version: Literal[1] = 1
    occurred_at: AwareDatetime
    # The local day (in the digest's time zone) the digest was for, and the window it reported.
    day: date
    since: AwareDatetime
    until: AwareDatetime
    team: str | None = None
    channel: str
    # The Slack message's ts and the chart's file ID.
    message_ts: str | None = None
    file_id: str | None = None


ReportEvent = Annotated[DigestPosted, Field(discriminator="type")]
