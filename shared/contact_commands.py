"""Manual merges, unmerges and tag changes of contacts as the CLI and `/sb` give them: the command, and a
check against the read model before it is published (the router checks again when it applies it, with the
last word)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared import i18n
from shared.events import MergeContacts, TagContact, UnmergeContacts
from shared.read_model import ReadModel

CONTACT_ID = re.compile(r"[\w-]{1,100}", re.ASCII)


def contact_command(
    command_id: UUID, at: datetime, agent_id: str, contact_id: str, into_contact_id: str | None = None
) -> MergeContacts | UnmergeContacts:
    """A merge of `contact_id` into `into_contact_id`, or without it an unmerge of `contact_id`."""
    if into_contact_id is None:
        return UnmergeContacts(event_id=command_id, occurred_at=at, agent_id=agent_id, contact_id=contact_id)
    return MergeContacts(
        event_id=command_id, occurred_at=at, agent_id=agent_id, contact_id=contact_id, into_contact_id=into_contact_id
    )


def tag_command(
    command_id: UUID, at: datetime, agent_id: str, contact_id: str, add: Iterable[str], remove: Iterable[str]
) -> TagContact:
    """Tags added to and removed from `contact_id` (lower-cased). Errors: pydantic's ValidationError for a tag
    that is not a word of letters, digits, `_`, `:`, `.`, `-` (64 at most)."""
    return TagContact(
        event_id=command_id,
        occurred_at=at,
        agent_id=agent_id,
        contact_id=contact_id,
        add=list(add),
        remove=list(remove),
    )


@dataclass(frozen=True)
class Refusal:
    """Why the router would refuse a contact command: a message ID of the catalogues (shared/locales) and its
    fields, so `/sb` answers in the agent's language and the CLI in English (`text(i18n.texts("en"))`)."""

    text_id: str
    fields: tuple[tuple[str, str], ...]

    def text(self, texts: i18n.Texts) -> str:
        return texts(self.text_id, **dict(self.fields))


def contact_refusal(
    contacts: Mapping[str, Mapping[str, Any] | None],
    contact_id: str,
    into_contact_id: str | None = None,
    *,
    tagging: bool = False,
) -> Refusal | None:
    """`refusal` decided on the read model's contacts by ID (`ReadModel.contact`; None or missing: unknown)."""
    shown = {}
    for named in filter(None, (contact_id, into_contact_id)):
        if not CONTACT_ID.fullmatch(named) or (found := contacts.get(named)) is None:
            return Refusal("contact.refusal.unknown", (("contact_id", named),))
        shown[named] = found
    if tagging:
        return None
    if into_contact_id is not None and shown[contact_id]["id"] == shown[into_contact_id]["id"]:
        return Refusal(
            "contact.refusal.one_already", (("contact_id", contact_id), ("into_contact_id", into_contact_id))
        )
    if into_contact_id is None and "merged_from" not in shown[contact_id]:
        return Refusal("contact.refusal.not_merged", (("contact_id", contact_id),))
    return None


async def refusal(
    read_model: ReadModel, contact_id: str, into_contact_id: str | None = None, *, tagging: bool = False
) -> Refusal | None:
    """Why the router would refuse the merge (or unmerge) now, or None: an unknown contact, two contacts
    that are one already, an unmerge of a contact that is not merged. A tag change is refused only for an
    unknown contact (`refusal(read_model, contact_id, tagging=True)`)."""
    named = [name for name in (contact_id, into_contact_id) if name and CONTACT_ID.fullmatch(name)]
    contacts = {name: await read_model.contact(name) for name in named}
    return contact_refusal(contacts, contact_id, into_contact_id, tagging=tagging)
