"""Logged phone calls: an agent who took (or made) a call logs it as a ticket, from Slack (`/sb call` opens
the `sb_call_modal` modal) or the command line (`switchboard ticket new --channel phone`).

The call becomes one `InboundMessage` of channel `phone`: the caller as its sender (the phone number in
E.164 and the email address as typed: claimed identities, since a call proves neither), the summary as its
text under a line naming the direction, the duration and the agent who logged it (its `source` is
"call:<agent ID>"). It is routed, timed and resolved to a contact like any other ticket; every call opens a
ticket of its own. Replies go to the caller's email when given, else to their WhatsApp when the phone number
is given and WhatsApp is configured (outside WhatsApp's 24-hour window, which a call does not open, a
reply is held and the agent told: shared/whatsapp_window.py), else nowhere, and the agent is told so. The
caller gets no acknowledgement: the agent tells them the ticket number.

The modal's wire format: blocks/actions `caller_name`, `caller_reach` (phone or email), `summary`
(plain_text_input), `direction` (static_select of `inbound`/`outbound`), `duration` (number_input, whole
minutes). The modal, its field errors and the view it becomes are in the agent's language (`texts`:
services.intake.slack_agents `agent_texts`); the command line's errors in English. Pure but for `log_call`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from email_validator import EmailNotValidError, validate_email

from services.intake.core import Intake
from shared import i18n
from shared.events import CALL_SOURCE_PREFIX, InboundMessage, ReplyRoute, Sender
from shared.identities import e164

CALL_MODAL = "sb_call_modal"
NAME_BLOCK, REACH_BLOCK, SUMMARY_BLOCK, DIRECTION_BLOCK, DURATION_BLOCK = (
    "caller_name",
    "caller_reach",
    "summary",
    "direction",
    "duration",
)
Direction = Literal["inbound", "outbound"]
DIRECTIONS: tuple[Direction, ...] = ("inbound", "outbound")
MAX_SUMMARY_CHARS = 3000
MAX_NAME_CHARS = 200
# A day on the phone is surely a typo.
MAX_DURATION_MINUTES = 24 * 60
SUBJECT_CHARS = 80
# The command line's language.
ENGLISH = i18n.Texts(i18n.REFERENCE)


class CallInvalid(ValueError):
    """What to correct in a call's details: field name (the modal's block) → why."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{field}: {why}" for field, why in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class LoggedCall:
    summary: str
    direction: Direction
    agent_id: str
    logged_at: datetime
    name: str | None = None
    # E.164.
    phone: str | None = None
    email: str | None = None
    duration_minutes: int | None = None

    @property
    def subject(self) -> str:
        first = self.summary.strip().splitlines()[0] if self.summary.strip() else ""
        return f"Phone call: {first[:SUBJECT_CHARS]}" if first else "Phone call"


def read_call(
    *,
    summary: str | None,
    agent_id: str,
    logged_at: datetime,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    reach: str | None = None,
    direction: str | None = "inbound",
    duration: str | int | None = None,
    texts: i18n.Texts = ENGLISH,
) -> LoggedCall:
    """A call's details as typed; raises CallInvalid naming each field to correct (in `texts`).

    `reach` is "phone or email" (the modal's one field): an address when it holds an "@", else a phone
    number. A phone number must be international (+34 600 123 456): a call comes from anywhere.
    """
    errors: dict[str, str] = {}
    if reach and reach.strip():
        if "@" in reach:
            email = reach
        else:
            phone = reach
    if phone is not None and phone.strip():
        number = e164(phone.strip())
        if number is None:
            errors[REACH_BLOCK if reach else "phone"] = texts("modal.call.error.phone")
        phone = number
    else:
        phone = None
    if email is not None and email.strip():
        try:
            email = validate_email(email.strip(), check_deliverability=False).normalized
        except EmailNotValidError as error:
            errors[REACH_BLOCK if reach else "email"] = texts("modal.call.error.email", reason=str(error))
            email = None
    else:
        email = None
    if phone is None and email is None and not errors:
        errors[REACH_BLOCK if reach is not None else "phone"] = texts("modal.call.error.reach")
    text = (summary or "").strip()
    if not text:
        errors[SUMMARY_BLOCK] = texts("modal.call.error.summary")
    elif len(text) > MAX_SUMMARY_CHARS:
        errors[SUMMARY_BLOCK] = texts("modal.call.error.summary_long", limit=str(MAX_SUMMARY_CHARS))
    if direction not in DIRECTIONS:
        errors[DIRECTION_BLOCK] = texts("modal.call.error.direction")
    minutes = None
    if duration is not None and str(duration).strip():
        if not str(duration).strip().isdigit() or not 0 <= int(str(duration).strip()) <= MAX_DURATION_MINUTES:
            errors[DURATION_BLOCK] = texts("modal.call.error.duration", limit=str(MAX_DURATION_MINUTES))
        else:
            minutes = int(str(duration).strip())
    if errors:
        raise CallInvalid(errors)
    return LoggedCall(
        summary=text,
        direction=direction,  # type: ignore[arg-type]  # checked against DIRECTIONS above
        agent_id=agent_id,
        logged_at=logged_at,
        name=(name or "").strip()[:MAX_NAME_CHARS] or None,
        phone=phone,
        email=email,
        duration_minutes=minutes,
    )


def reply_route(call: LoggedCall, *, whatsapp: bool) -> ReplyRoute | None:
    """Where replies to the call's ticket go: the caller's email, else their WhatsApp (when `whatsapp` is
    configured), else nowhere (the agent is told when replying)."""
    if call.email is not None:
        return ReplyRoute(channel="email", address=call.email, subject=call.subject)
    if call.phone is not None and whatsapp:
        return ReplyRoute(channel="whatsapp", address=call.phone.removeprefix("+"))
    return None


def call_text(call: LoggedCall, agent_name: str) -> str:
    way = "Inbound" if call.direction == "inbound" else "Outbound"
    duration = f", {call.duration_minutes} min" if call.duration_minutes is not None else ""
    return f"[{way} phone call{duration}, logged by {agent_name}]\n{call.summary}"


def call_inbound(
    call: LoggedCall, *, ticket_fields: dict[str, Any], key: str, agent_name: str, whatsapp: bool
) -> InboundMessage:
    """The call as a ticket's opening message (`ticket_fields`: the intake Resolution's fields)."""
    return InboundMessage.received(
        **ticket_fields,
        channel="phone",
        channel_message_id=key,
        source=f"{CALL_SOURCE_PREFIX}{call.agent_id}",
        sender=Sender(name=call.name, email=call.email, phone=call.phone),
        subject=call.subject,
        text=call_text(call, agent_name),
        reply_route=reply_route(call, whatsapp=whatsapp),
        acknowledge=False,
        received_at=call.logged_at,
    )


async def log_call(intake: Intake, call: LoggedCall, key: str) -> str:
    """Publishes the call as a new ticket's message; returns the ticket ID. The same `key` (the Slack view,
    a CLI run) is the same ticket. Raises like `Intake.publish`."""
    resolution = await intake.resolve_ticket(f"phone:call:{key}")
    agent = next((agent for agent in intake.config.agents if agent.id == call.agent_id), None)
    message = call_inbound(
        call,
        ticket_fields=resolution.fields(),
        key=key,
        agent_name=agent.name if agent else call.agent_id,
        whatsapp=not intake.settings.whatsapp_missing(),
    )
    await intake.publish(message)
    return resolution.ticket_id


# --- The Slack modal --------------------------------------------------------------------------------


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _input(block: str, label: str, element: dict[str, Any], *, optional: bool = False, hint: str | None = None):
    found = {"type": "input", "block_id": block, "label": _plain(label), "element": {"action_id": block, **element}}
    if optional:
        found["optional"] = True
    if hint:
        found["hint"] = _plain(hint)
    return found


def call_modal(texts: i18n.Texts) -> dict[str, Any]:
    """The modal `/sb call` opens (https://api.slack.com/reference/surfaces/views), in `texts`."""
    directions = [
        {"text": _plain(texts("modal.call.inbound")), "value": "inbound"},
        {"text": _plain(texts("modal.call.outbound")), "value": "outbound"},
    ]
    return {
        "type": "modal",
        "callback_id": CALL_MODAL,
        "title": _plain(texts("modal.call.title")),
        "submit": _plain(texts("modal.call.submit")),
        "close": _plain(texts("modal.cancel")),
        "blocks": [
            _input(
                NAME_BLOCK,
                texts("modal.call.name_label"),
                {"type": "plain_text_input", "max_length": MAX_NAME_CHARS},
                optional=True,
            ),
            _input(
                REACH_BLOCK,
                texts("modal.call.reach_label"),
                {"type": "plain_text_input", "max_length": 320},
                hint=texts("modal.call.reach_hint"),
            ),
            _input(
                SUMMARY_BLOCK,
                texts("modal.call.summary_label"),
                {"type": "plain_text_input", "multiline": True, "max_length": MAX_SUMMARY_CHARS},
            ),
            _input(
                DIRECTION_BLOCK,
                texts("modal.call.direction_label"),
                {"type": "static_select", "options": directions, "initial_option": directions[0]},
            ),
            _input(
                DURATION_BLOCK,
                texts("modal.call.duration_label"),
                {"type": "number_input", "is_decimal_allowed": False, "min_value": "0"},
                optional=True,
            ),
        ],
    }


def submitted_call(values: dict[str, Any], agent_id: str, logged_at: datetime, texts: i18n.Texts) -> LoggedCall:
    """The call a submitted `sb_call_modal` describes (its `view.state.values`); raises CallInvalid, its
    errors in `texts`."""

    def value(block: str) -> str | None:
        action = (values.get(block) or {}).get(block) or {}
        if block == DIRECTION_BLOCK:
            return (action.get("selected_option") or {}).get("value")
        found = action.get("value")
        return found if isinstance(found, str) else None

    return read_call(
        summary=value(SUMMARY_BLOCK),
        agent_id=agent_id,
        logged_at=logged_at,
        name=value(NAME_BLOCK),
        reach=value(REACH_BLOCK) or "",
        direction=value(DIRECTION_BLOCK),
        duration=value(DURATION_BLOCK),
        texts=texts,
    )


def logged_view(ticket_id: str, texts: i18n.Texts) -> dict[str, Any]:
    """What the modal becomes once the call is logged (`response_action: update`), in `texts`."""
    return {
        "type": "modal",
        "callback_id": f"{CALL_MODAL}_done",
        "title": _plain(texts("modal.call.logged_title")),
        "close": _plain(texts("modal.call.done")),
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": texts("modal.call.logged", ticket_id=ticket_id)},
            }
        ],
    }
