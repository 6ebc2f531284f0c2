"""Cross-channel duplicate tickets: the same contact asking the same thing twice (SPEC §3 Router; issue #11).

A new ticket whose contact opened another ticket within `duplicates.window` that is still active (new,
open, pending, on hold) is compared with it: subject and opening text, each side cut to `TEXT_CHARS`.
At or above `merge_at` the new ticket is merged into the earlier one at birth (`ticket.merged`, the
message copied there, the customer told "added to SB-1001"); from `suggest_at` up to `merge_at` the
agents are shown the pair in the earlier ticket's thread (`ticket.duplicate_suggested`). Pure: no I/O.

Similarity: rapidfuzz's token set and token sort ratios, averaged, over word tokens: Chinese runs are
cut into words by jieba, other scripts split on non-word characters; case and Unicode forms (NFKC)
are folded. The set ratio rewards the same words, the sort ratio keeps a short message from matching
every long one that contains it.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from rapidfuzz import fuzz

from services.router.frozen import evolve
from services.router.lifecycle import customer_wrote
from services.router.tickets import message_added, ticket_created
from shared.config import Classification
from shared.events import (
    ACTIVE_STATUSES,
    ContactSummary,
    DuplicateSuggested,
    InboundMessage,
    MessageAdded,
    StatusChanged,
    TicketCreated,
    TicketEvent,
    TicketMerged,
)
from shared.ids import derived_id
from shared.read_model import OPENING_TEXT_CHARS

if TYPE_CHECKING:
    from services.router.decide import KnownTicket

# How much of a ticket's subject and opening text is compared (the read model keeps as much).
TEXT_CHARS = OPENING_TEXT_CHARS
# Who merges a duplicate at birth (`ticket.merged` actor).
SYSTEM = "system"
# Runs of Han characters (CJK Unified Ideographs and Extension A) go to jieba.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class RecentTicket:
    """One of a contact's latest tickets, as the router reads it (`sb:contact:<id>:recent`)."""

    ticket_id: str
    created_at: datetime
    status: str
    # Subject and opening message, each cut to TEXT_CHARS; "" until the opening message is known.
    subject: str = ""
    text: str = ""
    # What a customer message joining it needs (lifecycle.customer_wrote reopens a waiting ticket).
    team: str = ""
    assignee_id: str | None = None
    resolutions: int = 0


@dataclass(frozen=True)
class Duplicate:
    """The earlier ticket a new one repeats, how alike they are (0 … 1) and what follows."""

    ticket: RecentTicket
    score: float
    action: Literal["merge", "suggest"]

    @property
    def ticket_id(self) -> str:
        return self.ticket.ticket_id


@functools.cache
def _jieba():  # noqa: ANN202 (jieba has no types)
    """jieba, its dictionary loaded on first use (about half a second, once per process)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def load_dictionary() -> None:
    """Loads jieba's dictionary now (about half a second), rather than on the first Chinese text."""
    _jieba().initialize()


def tokens(text: str) -> list[str]:
    """The words of `text`, case- and NFKC-folded; Chinese cut into words by jieba."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    words: list[str] = []
    position = 0
    for han in _HAN.finditer(folded):
        words += _WORD.findall(folded[position : han.start()])
        words += [word for word in _jieba().lcut(han.group()) if _WORD.fullmatch(word)]
        position = han.end()
    words += _WORD.findall(folded[position:])
    return words


def similarity(first: str, second: str) -> float:
    """How alike two texts are, from 0 (nothing shared) to 1 (the same words in the same order).

    Symmetric; a text without any word scores 0 against everything (an empty message repeats nothing).
    """
    a, b = " ".join(tokens(first)), " ".join(tokens(second))
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    score = (fuzz.token_set_ratio(a, b) + fuzz.token_sort_ratio(a, b)) / 200
    return min(max(score, 0.0), 1.0)


def comparable(subject: str | None, text: str) -> str:
    """What of a ticket is compared: its subject and text, each cut to TEXT_CHARS."""
    return f"{(subject or '')[:TEXT_CHARS]}\n{text[:TEXT_CHARS]}"


def find_duplicate(
    subject: str | None,
    text: str,
    recent: Iterable[RecentTicket],
    now: datetime,
    *,
    window: timedelta,
    merge_at: float,
    suggest_at: float,
) -> Duplicate | None:
    """The earlier ticket a new ticket (`subject`, `text`) repeats, among the contact's `recent` ones that are
    active and were created within `window` before `now`: the most alike, the earliest on a tie. None
    when none scores `suggest_at` or more."""
    new = comparable(subject, text)
    best: tuple[float, datetime, RecentTicket] | None = None
    for ticket in recent:
        if ticket.status not in ACTIVE_STATUSES or not timedelta(0) <= now - ticket.created_at <= window:
            continue
        score = similarity(new, comparable(ticket.subject, ticket.text))
        if score >= suggest_at and (best is None or (-score, ticket.created_at) < (-best[0], best[1])):
            best = (score, ticket.created_at, ticket)
    if best is None:
        return None
    score, _, ticket = best
    return Duplicate(ticket, round(score, 4), "merge" if score >= merge_at else "suggest")


class RecentTickets:
    """The latest tickets of the batch's contacts, kept up to date with the batch's events (`absorb`)."""

    def __init__(self, by_contact: dict[str, list[RecentTicket]] | None = None):
        self._by_contact = by_contact or {}
        self._contact_of = {
            ticket.ticket_id: contact for contact, listed in self._by_contact.items() for ticket in listed
        }

    def of(self, contact_id: str) -> list[RecentTicket]:
        return self._by_contact.get(contact_id, [])

    def absorb(self, event: TicketEvent) -> None:
        """What `event` changes: a new ticket joins its contact's; the opening text and status changes."""
        if isinstance(event, TicketCreated):
            contact_id = event.contact.contact_id
            self._contact_of[event.ticket_id] = contact_id
            subject = (event.subject or "")[:TEXT_CHARS]
            ticket = RecentTicket(event.ticket_id, event.occurred_at, "new", subject, team=event.team)
            self._by_contact.setdefault(contact_id, []).append(ticket)
            return
        if (contact_id := self._contact_of.get(event.ticket_id)) is None:
            return
        listed = self._by_contact[contact_id]
        for index, ticket in enumerate(listed):
            if ticket.ticket_id != event.ticket_id:
                continue
            if isinstance(event, MessageAdded) and event.author == "customer" and event.review is None:
                if not ticket.text:
                    listed[index] = evolve(ticket, text=event.text[:TEXT_CHARS])
            elif isinstance(event, StatusChanged):
                listed[index] = evolve(
                    ticket, status=event.to_status, resolutions=event.resolution, assignee_id=event.assignee_id
                )


def merged_at_birth(
    message: InboundMessage,
    contact: ContactSummary,
    classification: Classification,
    duplicate: Duplicate,
    target: KnownTicket | RecentTicket,
    now: datetime,
    contact_tags: list[str] | None = None,
) -> list[TicketEvent]:
    """A new ticket that repeats `duplicate.ticket_id`: created (its acknowledgement names the earlier ticket),
    its message recorded on it, merged into the earlier ticket and closed; the message is copied onto the
    earlier ticket (`target`, as the batch knows it: mirrored into its thread, reopening it when it waited
    for the customer). Not assigned: nobody works on it. `contact_tags`: the contact's tags the rules saw."""
    into = duplicate.ticket_id
    message_id = str(message.message_id)

    def envelope(step: str, ticket_id: str = message.ticket_id) -> dict[str, Any]:
        return {
            "event_id": derived_id(message_id, step),
            "occurred_at": now,
            "ticket_id": ticket_id,
            "correlation_id": message_id,
            "traceparent": message.traceparent,
        }

    joined = message_added(message, now, contact_id=contact.contact_id)
    return [
        ticket_created(message, contact, classification, now, merged_into=into, contact_tags=contact_tags),
        joined,
        TicketMerged(**envelope("merged"), into_ticket_id=into, actor=SYSTEM),
        StatusChanged(
            **envelope("merged_closed"),
            from_status="new",
            to_status="closed",
            actor=SYSTEM,
            reason=f"merged into {into}: the same request ({duplicate.score:.0%} alike)",
            team=classification.team,
        ),
        joined.model_copy(update={"ticket_id": into, "event_id": derived_id(message_id, "merged_message")}),
        *customer_wrote(message.model_copy(update={"ticket_id": into}), target, now),
    ]


def suggestion(message: InboundMessage, duplicate: Duplicate, now: datetime) -> DuplicateSuggested:
    """The agents are shown that the new ticket may repeat `duplicate.ticket_id` (in that ticket's thread)."""
    message_id = str(message.message_id)
    return DuplicateSuggested(
        event_id=derived_id(message_id, "duplicate_suggested"),
        occurred_at=now,
        ticket_id=duplicate.ticket_id,
        correlation_id=message_id,
        traceparent=message.traceparent,
        duplicate_ticket_id=message.ticket_id,
        score=duplicate.score,
    )
