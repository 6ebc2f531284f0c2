"""Manual merges, unmerges and tag changes of contacts as the CLI and `/sb` give them: the command, and a
check against the read model before it is published (the router checks again when it applies it, with the
last word)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

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


async def refusal(
    read_model: ReadModel, contact_id: str, into_contact_id: str | None = None, *, tagging: bool = False
) -> str | None:
    """Why the router would refuse the merge (or unmerge) now, or None: an unknown contact, two contacts
    that are one already, an unmerge of a contact that is not merged. A tag change is refused only for an
    unknown contact (`refusal(read_model, contact_id, tagging=True)`)."""
    shown = {}
    for named in filter(None, (contact_id, into_contact_id)):
        if not CONTACT_ID.fullmatch(named) or (found := await read_model.contact(named)) is None:
            return f"there is no contact {named}"
        shown[named] = found
    if tagging:
        return None
    if into_contact_id is not None and shown[contact_id]["id"] == shown[into_contact_id]["id"]:
        return f"{contact_id} and {into_contact_id} are one contact already"
    if into_contact_id is None and "merged_from" not in shown[contact_id]:
        return f"{contact_id} is not merged into another contact"
    return None
