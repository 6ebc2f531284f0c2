"""Contact tags ("vip", "trial"), in pure code: the event of an agent's `command.tag_contact`.

Rules (issue #11 item 3, issue #12 item 2): a contact's tags are set by hand and matched by classification
rules (`contact_tag`) and SLA policies (`when: {contact_tag: [...]}`) when a ticket of the contact is
created. A merged contact's tags are its survivor's: the command tags the survivor, and lookups follow the
merge pointer as the rest of the identity graph does.
"""

from __future__ import annotations

from datetime import datetime

from services.router.contacts import ContactGraph, Refused, require_actor
from shared.config import DeskConfig
from shared.events import ContactTagsChanged, TagContact
from shared.ids import derived_id


def decide_tag_command(
    command: TagContact, graph: ContactGraph, config: DeskConfig, now: datetime
) -> list[ContactTagsChanged]:
    """The survivor's `contact.tags_changed`, none when the tags are so already (a redelivered command, or
    tags added that it has). A tag both added and removed is removed.

    Raises `Refused` with the reason: an actor who is neither a configured agent nor "admin", an unknown
    contact (`graph.contacts` holds the contacts that exist).
    """
    require_actor(command.agent_id, config)
    if command.contact_id not in graph.contacts:
        raise Refused(f"there is no contact {command.contact_id}")
    survivor = graph.root(command.contact_id)
    before = graph.tags(survivor)
    after = (before | set(command.add)) - set(command.remove)
    if after == before:
        return []
    return [
        ContactTagsChanged(
            event_id=derived_id(command.event_id, "contact_tags_changed"),
            occurred_at=now,
            contact_id=survivor,
            tags=sorted(after),
            added=sorted(after - before),
            removed=sorted(before - after),
            actor=command.agent_id,
            ticket_id=command.ticket_id,
            correlation_id=str(command.event_id),
            traceparent=command.traceparent,
        )
    ]
