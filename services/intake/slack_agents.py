"""What an agent's Slack interaction asks of a ticket: card buttons, modal submissions, thread replies. Pure.

Each becomes a command on `switchboard.commands.v1` (shared.events) whose ID is derived from Slack's
stable fields, so that Slack's retries and a replayed request carry the same command ID and the
router applies it once: a button by its `action_ts`, user, `action_id` and `value`; a modal by its
view's `id` and `hash`; a thread reply by its channel and `ts`. Payload shapes:
https://api.slack.com/reference/interaction-payloads/block-actions-payload,
https://api.slack.com/reference/interaction-payloads/views, https://api.slack.com/events/message.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from services.intake.slack_messages import PERSON_MESSAGE_SUBTYPES, MessageEvent, plain_text
from services.intake.slack_modals import ASSIGNEE_BLOCK, MODAL_OF_BUTTON, TEXT_BLOCK
from shared import i18n
from shared.config import Agent, DeskConfig
from shared.events import (
    AgentNote,
    AgentReply,
    AssignTicket,
    ClaimTicket,
    CommandEnvelope,
    EscalateTicket,
    KeepContactsApart,
    MergeContacts,
    RateTicket,
    SetStatus,
    SlackOrigin,
)
from shared.ids import TICKET_ID_PATTERN, derived_id

logger = logging.getLogger(__name__)

STATUS_OF_BUTTON = {"sb_pending": "pending", "sb_resolve": "solved", "sb_reopen": "open"}
# Buttons that are a command by themselves; the modal buttons (MODAL_OF_BUTTON) ask for more first.
COMMAND_BUTTONS = frozenset({"sb_claim", "sb_escalate", *STATUS_OF_BUTTON})
CSAT_BUTTON = "sb_csat"
# The buttons of a merge suggestion (services/notifier/contact_suggestions.py), value
# "<ticket ID>:<contact ID>:<other contact ID>".
MERGE_CONTACTS_BUTTON, KEEP_CONTACTS_BUTTON = "sb_merge_contacts", "sb_keep_contacts"
CONTACT_BUTTONS = frozenset({MERGE_CONTACTS_BUTTON, KEEP_CONTACTS_BUTTON})
_CONTACT_ID = re.compile(r"[\w-]{1,100}", re.ASCII)
# Catalogue IDs (shared/locales) of what agents are told; `agent_texts` gives their language.
FILES_NOT_SENT = "slack.files_not_sent"
NOT_AN_AGENT = "slack.not_an_agent"
_TS = re.compile(r"^\d{1,10}\.\d{1,9}$")
_NOTE = re.compile(r"^note:", re.IGNORECASE)
# The whole value, ASCII digits only (`$` would let a trailing newline through).
_TICKET_ID = re.compile(TICKET_ID_PATTERN.removeprefix("^").removesuffix("$"), re.ASCII)
_RATING = re.compile(rf"(?P<ticket>{_TICKET_ID.pattern}):(?P<resolution>\d{{1,9}}):(?P<score>\d)", re.ASCII)


def is_ticket_id(value: str) -> bool:
    return _TICKET_ID.fullmatch(value) is not None


def agent_texts(agent_id: str | None, config: DeskConfig) -> i18n.Texts:
    """The texts of the language an agent is answered in: their first team's (`teams[].language`), else the
    desk's (also for a Slack user who is no agent)."""
    teams = config.teams_of(agent_id) if agent_id else []
    return i18n.texts(config.team_locale(teams[0]) if teams else config.desk_locale)


class Refused(ValueError):
    """An interaction that asks for nothing Switchboard can do; the message says why, to the person: a message
    ID and its fields (`text` words it in the reader's language; `str` in English, for logs), or a text
    already worded (which `text` leaves as it is)."""

    def __init__(self, message: str, **fields: object):
        super().__init__(message)
        self.message = message
        self.fields = fields

    def text(self, texts: i18n.Texts) -> str:
        return texts(self.message, **self.fields)

    def __str__(self) -> str:
        return self.text(i18n.texts(i18n.REFERENCE))


class InputErrors(ValueError):
    """A modal submission to send back for correction: Slack's `errors` (block ID → message)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{block}: {message}" for block, message in errors.items()))
        self.errors = errors


def _text(mapping: object, key: str) -> str | None:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) and value else None


def _at(ts: str | None, now: datetime) -> datetime:
    """When a Slack `ts` says something happened; `now` for one missing or malformed."""
    return datetime.fromtimestamp(float(ts), UTC) if ts and _TS.match(ts) else now


# --- Card buttons ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Click:
    """One button press of a `block_actions` payload."""

    user_id: str
    action_id: str
    value: str
    action_ts: str
    trigger_id: str | None
    channel_id: str | None
    message_ts: str | None
    thread_ts: str | None

    @property
    def event_id(self) -> UUID:
        return derived_id("slack-action", self.action_ts, self.user_id, self.action_id, self.value)

    @property
    def origin(self) -> SlackOrigin:
        # A card is its ticket's thread root: the thread is the card's own unless it sits in one.
        return SlackOrigin(
            user_id=self.user_id,
            channel_id=self.channel_id,
            message_ts=self.message_ts,
            thread_ts=self.thread_ts or self.message_ts,
        )


def click_of(body: dict[str, Any]) -> Click:
    """The button pressed; raises Refused for a payload without a user or an action (Slack sends both)."""
    user_id = _text(body.get("user"), "id")
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    action_id, action_ts = _text(action, "action_id"), _text(action, "action_ts")
    if user_id is None or action_id is None or action_ts is None:
        raise Refused("This button press came without its user or action; nothing was done.")
    container, message = body.get("container"), body.get("message")
    return Click(
        user_id=user_id,
        action_id=action_id,
        value=_text(action, "value") or "",
        action_ts=action_ts,
        trigger_id=_text(body, "trigger_id"),
        channel_id=_text(container, "channel_id") or _text(body.get("channel"), "id"),
        message_ts=_text(container, "message_ts"),
        thread_ts=_text(message, "thread_ts"),
    )


def ticket_of(click: Click) -> str:
    """The ticket a card button names (its `value`); raises Refused when it is none."""
    if not is_ticket_id(click.value):
        raise Refused("slack.no_ticket_button", value=repr(click.value[:40]))
    return click.value


def button_command(click: Click, agent: Agent, now: datetime) -> CommandEnvelope:
    """The command of a claim, status or escalate button pressed by `agent`; raises Refused."""
    fields = {
        "event_id": click.event_id,
        "occurred_at": _at(click.action_ts, now),
        "ticket_id": ticket_of(click),
        "agent_id": agent.id,
        "origin": click.origin,
    }
    if click.action_id == "sb_claim":
        return ClaimTicket(**fields)
    if click.action_id == "sb_escalate":
        return EscalateTicket(**fields)
    if click.action_id in STATUS_OF_BUTTON:
        return SetStatus(**fields, status=STATUS_OF_BUTTON[click.action_id])
    raise Refused("slack.unknown_button", action_id=repr(click.action_id))


def contact_button_command(click: Click, agent: Agent, now: datetime) -> MergeContacts | KeepContactsApart:
    """The merge a suggestion's "Merge" button asks for (the first contact, the newer, into the other), or the
    two contacts kept apart ("Keep apart": never suggested again); raises Refused for a value Switchboard did
    not make."""
    ticket_id, _, contacts = click.value.partition(":")
    contact_id, _, other_id = contacts.partition(":")
    if not is_ticket_id(ticket_id) or not _CONTACT_ID.fullmatch(contact_id) or not _CONTACT_ID.fullmatch(other_id):
        raise Refused("slack.foreign_button")
    fields: dict[str, Any] = {
        "event_id": click.event_id,
        "occurred_at": _at(click.action_ts, now),
        "ticket_id": ticket_id,
        "agent_id": agent.id,
        "origin": click.origin,
        "contact_id": contact_id,
    }
    if click.action_id == KEEP_CONTACTS_BUTTON:
        return KeepContactsApart(**fields, other_contact_id=other_id)
    return MergeContacts(**fields, into_contact_id=other_id)


def rating_command(click: Click, now: datetime) -> RateTicket:
    """A Slack Connect customer's CSAT button, value `<ticket_id>:<resolution>:<score>`; raises Refused.

    Its ID is `derived_id("csat", ticket_id, resolution)` on every channel: rating twice is one rating.
    """
    rating = _RATING.fullmatch(click.value)
    if rating is None:
        raise Refused("slack.foreign_rating")
    resolution = int(rating["resolution"])
    try:
        return RateTicket(
            event_id=derived_id("csat", rating["ticket"], resolution),
            occurred_at=_at(click.action_ts, now),
            ticket_id=rating["ticket"],
            agent_id="customer",
            resolution=resolution,
            score=int(rating["score"]),
            origin=click.origin,
        )
    except ValidationError:
        raise Refused("slack.rating_out_of_range") from None


NOT_YOUR_RATING = "slack.not_your_rating"


def rating_thread(click: Click) -> str | None:
    """The conversation (`slack:<channel>:<thread ts>`) of the thread a CSAT button was clicked in: the
    rating counts only when that thread leads to the rated ticket (the customer's own), as a Telegram
    rating counts only from the ticket's chat. None for a click without its channel or message."""
    thread_ts = click.thread_ts or click.message_ts
    if click.channel_id is None or thread_ts is None:
        return None
    return f"slack:{click.channel_id}:{thread_ts}"


# --- Modal submissions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """A `view_submission` of one of our modals."""

    user_id: str
    callback_id: str
    ticket_id: str
    view_id: str
    view_hash: str
    values: dict[str, Any]

    @property
    def event_id(self) -> UUID:
        return derived_id("slack-view", self.view_id, self.view_hash)

    def input(self, block_id: str) -> dict[str, Any]:
        """The state of the input `block_id` (whose action ID is the same), or {}."""
        state = self.values.get(block_id)
        value = state.get(block_id) if isinstance(state, dict) else None
        return value if isinstance(value, dict) else {}


def submission_of(body: dict[str, Any]) -> Submission:
    """The submitted modal; raises Refused when it is not one of ours with a ticket ID."""
    view = body.get("view") if isinstance(body.get("view"), dict) else {}
    user_id = _text(body.get("user"), "id")
    callback_id, ticket_id = _text(view, "callback_id"), _text(view, "private_metadata")
    view_id, view_hash = _text(view, "id"), _text(view, "hash") or ""
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    if user_id is None or view_id is None or callback_id not in MODAL_OF_BUTTON.values():
        raise Refused("This form is not one Switchboard opened; nothing was done.")
    if ticket_id is None or not is_ticket_id(ticket_id):
        raise Refused("This form names no ticket; nothing was done.")
    return Submission(user_id, callback_id, ticket_id, view_id, view_hash, values if isinstance(values, dict) else {})


def modal_origin(click: Click) -> SlackOrigin:
    """Where a modal was opened: its card's channel and thread (the card is the thread's root), no message
    of its own (a reply written in a modal has no Slack message to react on)."""
    return click.origin.model_copy(update={"message_ts": None})


def submitted_command(
    submission: Submission, agent: Agent, config: DeskConfig, now: datetime, opened_from: SlackOrigin | None = None
) -> CommandEnvelope:
    """The reply, note or assignment a modal asks for; raises InputErrors for input to correct.

    `opened_from` (modal_origin, when still known) says where the command's outcome is shown. Input errors
    are in the agent's language (`agent_texts`).
    """
    texts = agent_texts(agent.id, config)
    origin = SlackOrigin(user_id=submission.user_id)
    if opened_from is not None:
        origin = opened_from.model_copy(update={"user_id": submission.user_id})
    fields = {
        "event_id": submission.event_id,
        "occurred_at": now,
        "ticket_id": submission.ticket_id,
        "agent_id": agent.id,
        "origin": origin,
    }
    if submission.callback_id == MODAL_OF_BUTTON["sb_reassign"]:
        selected = submission.input(ASSIGNEE_BLOCK).get("selected_option")
        kind, _, target = (_text(selected, "value") or "").partition(":")
        if kind == "agent" and any(known.id == target for known in config.agents):
            return AssignTicket(**fields, to_agent=target)
        if kind == "team" and any(team.id == target for team in config.teams):
            return AssignTicket(**fields, to_team=target)
        raise InputErrors({ASSIGNEE_BLOCK: texts("modal.error.assignee")})
    text = (_text(submission.input(TEXT_BLOCK), "value") or "").strip()
    if not text:
        raise InputErrors({TEXT_BLOCK: texts("modal.error.empty")})
    try:
        if submission.callback_id == MODAL_OF_BUTTON["sb_note"]:
            return AgentNote(**fields, text=text)
        return AgentReply(**fields, text=text)
    except ValidationError:
        raise InputErrors({TEXT_BLOCK: texts("modal.error.too_long")}) from None


# --- Thread replies in a team channel -------------------------------------------------------------


@dataclass(frozen=True)
class ThreadPost:
    """An agent's message in a thread of a team channel: maybe a reply on a ticket's card."""

    channel: str
    ts: str
    thread_ts: str
    user_id: str
    text: str
    agent: Agent
    # Files the agent attached: not sent to the customer (an agent command carries text only).
    files: tuple[str, ...] = ()

    @property
    def conversation(self) -> str:
        """The ticket thread's conversation key, as the notifier records its card (shared.conversations)."""
        return f"slack:{self.channel}:{self.thread_ts}"


def team_channels(config: DeskConfig) -> frozenset[str]:
    return frozenset(team.slack_channel for team in config.teams)


def thread_post(raw_event: dict[str, Any], config: DeskConfig) -> ThreadPost | None:
    """An agent's thread reply in a team channel; None, logged, for anything else (bots, top-level posts,
    edits, deletions, people who are not agents). Never raises."""
    try:
        event = MessageEvent.model_validate(raw_event)
    except ValidationError as error:
        return _ignored(f"malformed message event: {error.errors()[0]['msg']}", raw_event)
    if event.channel not in team_channels(config):
        return _ignored("not a team channel", raw_event)
    if event.bot_id or event.subtype not in PERSON_MESSAGE_SUBTYPES:
        # Edits and deletions are not replayed to the customer: what was sent stays sent.
        return _ignored("not a person's new message", raw_event)
    if event.thread_ts is None or event.thread_ts == event.ts:
        return _ignored("not in a thread", raw_event)
    agent = config.agent_by_slack_user(event.user) if event.user is not None else None
    if event.user is None or agent is None:
        return _ignored("not written by an agent", raw_event)
    text = plain_text(event.text).strip()
    files = tuple(file.label for file in event.files)
    return ThreadPost(event.channel, event.ts, event.thread_ts, event.user, text, agent, files)


def thread_command(post: ThreadPost, ticket_id: str) -> AgentReply | AgentNote | None:
    """The reply to the customer, or the internal note when it starts with `note:` (Chatwoot's convention);
    None, logged, for one with nothing to say. Raises Refused for one too long for a message."""
    note = _NOTE.match(post.text) is not None
    text = post.text[len("note:") :].strip() if note else post.text
    if not text:
        return _ignored("nothing to send", {"channel": post.channel, "ts": post.ts})
    fields = {
        "event_id": derived_id("slack-message", post.channel, post.ts),
        "occurred_at": datetime.fromtimestamp(float(post.ts), UTC),
        "ticket_id": ticket_id,
        "agent_id": post.agent.id,
        "origin": SlackOrigin(
            user_id=post.user_id, channel_id=post.channel, message_ts=post.ts, thread_ts=post.thread_ts
        ),
        "text": text,
    }
    try:
        return AgentNote(**fields) if note else AgentReply(**fields)
    except ValidationError:
        raise Refused("slack.message_too_long") from None


def _ignored(reason: str, event: dict[str, Any]) -> None:
    logger.info(
        "Slack message in a team channel ignored: %s",
        reason,
        extra={"slack_channel": _text(event, "channel"), "slack_ts": _text(event, "ts")},
    )
