"""The identity graph's decisions, in pure code: which contact a message belongs to, which identities it
links or verifies, which contacts it merges and which merges it only suggests; manual merges and unmerges.

Rules (SPEC §3 Router "Contacts", issue #11):
- An identity is *verified* when the channel proves it (`VERIFIED_KINDS`: mail From, the Telegram user
  and a phone shared through Telegram's contact button for the sender's own account, the Slack user and
  its profile email, the WhatsApp phone number) and *claimed* when typed into a form, a chat or a logged call.
- The first link of an identity wins and is never taken from its contact; contacts join by merging:
  the merged contact points at its survivor, so a merge is undone by removing that pointer.
- A message that proves (verified) identities owned by different contacts merges them; the older
  contact survives. A claimed identity may attach a new ticket to the contact owning it, but never
  merges two contacts nor joins a verified identity to that contact: it is a suggestion to agents.
- Two contacts holding different verified identities of one channel account (`EXCLUSIVE_KINDS`: two
  Telegram users, two Slack users) are never merged automatically: a suggestion (`contact.merge_suggested`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.router.frozen import evolve
from shared.config import DeskConfig
from shared.events import (
    ContactMerged,
    ContactsKeptApart,
    ContactTagsChanged,
    ContactUnmerged,
    IdentityLinked,
    InboundMessage,
    KeepContactsApart,
    MergeContacts,
    MergeSuggested,
    Sender,
    TicketCreated,
    UnmergeContacts,
)
from shared.identities import identities_of
from shared.ids import derived_id

# The identity kinds each channel proves; form and chat prove none (what is typed there is claimed).
VERIFIED_KINDS: Mapping[str, frozenset[str]] = {
    "email": frozenset({"email"}),
    # Intake carries a phone only when the shared contact is the sender's own (user_id == from.id).
    "telegram": frozenset({"telegram", "phone"}),
    # The Slack user and the email of its Slack profile.
    "slack": frozenset({"slack", "email"}),
    # WhatsApp delivers from the phone number itself: the customer's number (E.164) is proved.
    "whatsapp": frozenset({"phone"}),
    # WeCom's callback is signed and the customer's external_userid comes from WeCom's own API.
    "wecom": frozenset({"wecom"}),
}
# The identity that is the sender's account on each channel: a message belongs to its owner first.
ACCOUNT_KIND: Mapping[str, str] = {
    "email": "email",
    "telegram": "telegram",
    "slack": "slack",
    "whatsapp": "phone",
    "wecom": "wecom",
}
# Channel accounts one person holds one of: two verified ones of a kind are two people until an agent says not.
EXCLUSIVE_KINDS: Mapping[str, str] = {"telegram": "Telegram", "slack": "Slack", "wecom": "WeChat"}
ADMIN = "admin"


def kind_of(identity: str) -> str:
    return identity.partition(":")[0]


def sender_identities(channel: str, sender: Sender) -> dict[str, bool]:
    """The sender's identities (strongest first, as `shared.identities.identities_of`) → whether the
    channel proved it (True) or it was only claimed (False). A channel account (`EXCLUSIVE_KINDS`) is an
    identity only on its own channel: nobody types a Telegram user ID, so elsewhere it is left out."""
    proved = VERIFIED_KINDS.get(channel, frozenset())
    return {
        identity: kind_of(identity) in proved
        for identity in identities_of(sender)
        if kind_of(identity) in proved or kind_of(identity) not in EXCLUSIVE_KINDS
    }


@dataclass(frozen=True)
class ContactRecord:
    """One contact's own part of the graph (not counting contacts merged into it)."""

    identities: frozenset[str] = frozenset()
    verified: frozenset[str] = frozenset()
    tickets: frozenset[str] = frozenset()
    # When its first ticket was created (Unix seconds); the older contact survives a merge.
    created: float = math.inf
    # Its own tags (`contact.tags_changed`); a merged contact shows its survivor's (`ContactGraph.tags`).
    tags: frozenset[str] = frozenset()
    # The contacts an agent kept apart from it (`contact.kept_apart`).
    apart: frozenset[str] = frozenset()


@dataclass
class ContactGraph:
    """The contacts a batch concerns, as Redis held them when it was read, kept up to date by `absorb`.

    `parents` maps a merged contact to the contact it was merged into; a contact with no parent is a
    root (what lookups show). `contacts` holds every contact read or created so far.
    """

    parents: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, ContactRecord] = field(default_factory=dict)

    def root(self, contact_id: str) -> str:
        seen = {contact_id}
        while (parent := self.parents.get(contact_id)) is not None and parent not in seen:
            seen.add(parent)
            contact_id = parent
        return contact_id

    def members(self, contact_id: str) -> list[str]:
        """The contact and every contact merged into it, at any depth."""
        children: dict[str, list[str]] = {}
        for child, parent in self.parents.items():
            children.setdefault(parent, []).append(child)
        found, queue = [contact_id], [contact_id]
        while queue:
            for child in children.get(queue.pop(), []):
                if child not in found:
                    found.append(child)
                    queue.append(child)
        return found

    def _union(self, contact_id: str, attribute: str) -> frozenset[str]:
        return frozenset(
            item
            for member in self.members(contact_id)
            for item in getattr(self.contacts.get(member, ContactRecord()), attribute)
        )

    def kept_apart(self, one: str, other: str) -> bool:
        """Whether an agent kept the two contacts (or contacts merged into either) apart."""
        others = set(self.members(self.root(other)))
        return any(kept in others for kept in self._union(self.root(one), "apart"))

    def identities(self, contact_id: str) -> frozenset[str]:
        return self._union(contact_id, "identities")

    def verified(self, contact_id: str) -> frozenset[str]:
        return self._union(contact_id, "verified")

    def tickets(self, contact_id: str) -> frozenset[str]:
        return self._union(contact_id, "tickets")

    def created(self, contact_id: str) -> float:
        return self.contacts.get(contact_id, ContactRecord()).created

    def tags(self, contact_id: str) -> frozenset[str]:
        """The contact's tags: its survivor's when it is merged (tags are not unioned, so an unmerge gives
        the merged contact back the tags it had)."""
        return self.contacts.get(self.root(contact_id), ContactRecord()).tags

    def absorb(self, event: Any) -> None:
        """What an event decided in this batch changes in the graph."""
        if isinstance(event, IdentityLinked):
            record = self.contacts.get(event.contact_id, ContactRecord())
            self.contacts[event.contact_id] = evolve(
                record,
                identities=record.identities | {event.identity},
                verified=record.verified | {event.identity} if event.verified else record.verified,
            )
        elif isinstance(event, TicketCreated):
            contact_id = event.contact.contact_id
            record = self.contacts.get(contact_id, ContactRecord())
            self.contacts[contact_id] = evolve(
                record,
                tickets=record.tickets | {event.ticket_id},
                created=min(record.created, event.occurred_at.timestamp()),
            )
        elif isinstance(event, ContactMerged):
            self.parents[event.contact_id] = event.survivor_id
        elif isinstance(event, ContactUnmerged):
            self.parents.pop(event.contact_id, None)
        elif isinstance(event, ContactsKeptApart):
            for one, other in ((event.contact_id, event.other_contact_id), (event.other_contact_id, event.contact_id)):
                record = self.contacts.get(one, ContactRecord())
                self.contacts[one] = evolve(record, apart=record.apart | {other})
        elif isinstance(event, ContactTagsChanged):
            record = self.contacts.get(event.contact_id, ContactRecord())
            self.contacts[event.contact_id] = evolve(record, tags=frozenset(event.tags))


@dataclass(frozen=True)
class Link:
    identity: str
    # The identity's owner: the message's contact for a new link, the current owner for a verification.
    contact_id: str
    verified: bool


@dataclass(frozen=True)
class Merge:
    contact_id: str
    survivor_id: str
    identity: str


@dataclass(frozen=True)
class Suggestion:
    # The newer contact, then the older one (the survivor if an agent merges them).
    contact_id: str
    other_contact_id: str
    identity: str
    reason: str


@dataclass(frozen=True)
class Resolution:
    """Who wrote a message: its contact (a root, or a new contact) and what the message changes in the graph."""

    contact_id: str
    links: list[Link] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    # Someone else's channel account wrote on the contact's ticket: the sender is not `contact_id`.
    foreign: bool = False


def resolve(
    channel: str,
    sender: Sender,
    owners: Mapping[str, str | None],
    graph: ContactGraph,
    new_contact_id: str,
    *,
    anchor: str | None = None,
    suggest_claimed: bool = True,
) -> Resolution:
    """The contact of a message from `sender` on `channel`, and the links, merges and suggestions it makes.

    `owners` maps identities to the contact that linked them first; `anchor` is the contact the message
    belongs to already (a message on an existing ticket), else it is the owner of the sender's channel
    account, else `new_contact_id`. `suggest_claimed`: whether claimed identities owned by other
    contacts are suggested to agents.
    """
    found = sender_identities(channel, sender)

    def root_of(identity: str) -> str | None:
        owner = owners.get(identity)
        return graph.root(owner) if owner else None

    verified = [identity for identity, proved in found.items() if proved]
    claimed = [identity for identity, proved in found.items() if not proved]
    account = next((i for i in verified if kind_of(i) == ACCOUNT_KIND.get(channel)), verified[0] if verified else None)
    if anchor is not None:
        anchor = graph.root(anchor)
        if account is not None and kind_of(account) in EXCLUSIVE_KINDS:
            owner = root_of(account)
            theirs = {account} if owner is None else _exclusive(graph.verified(owner))
            if owner != anchor and _clash(_exclusive(graph.verified(anchor)), theirs):
                # Another Telegram or Slack user wrote on this contact's ticket (a colleague in a Slack
                # Connect thread): it proves nothing about the ticket's contact.
                return Resolution(anchor, foreign=True)
    elif account is not None:
        anchor = root_of(account) or new_contact_id
    else:
        # Only claimed identities: a new ticket may join the contact owning the strongest of them.
        anchor = next((root for identity in claimed if (root := root_of(identity))), new_contact_id)

    # The contacts this message proves to be one person, starting from its anchor, oldest first after it.
    group = [anchor]
    exclusive = set(_exclusive(graph.verified(anchor)))
    exclusive |= {
        identity for identity in verified if root_of(identity) is None and kind_of(identity) in EXCLUSIVE_KINDS
    }
    via: dict[str, str] = {}
    proved_roots = {}
    for identity in verified:
        if (root := root_of(identity)) is not None and root != anchor:
            proved_roots.setdefault(root, identity)
    refused: list[tuple[str, str, str]] = []
    for root in sorted(proved_roots, key=lambda contact: (graph.created(contact), contact)):
        identity = proved_roots[root]
        theirs = _exclusive(graph.verified(root))
        if clash := _clash(exclusive, theirs):
            refused.append((root, identity, clash))
            continue
        group.append(root)
        via[root] = identity
        exclusive |= theirs
    existing = [contact for contact in group if contact != new_contact_id]
    survivor = min(existing, key=lambda contact: (graph.created(contact), contact)) if existing else anchor
    merges = [
        Merge(contact, survivor, via.get(contact) or via[survivor]) for contact in existing if contact != survivor
    ]
    members = set(group)
    # Named with the survivor: a new anchor merged into an existing contact is never created.
    suggestions = [
        _suggestion(graph, survivor, root, identity, clash)
        for root, identity, clash in refused
        if not graph.kept_apart(survivor, root)
    ]

    links: list[Link] = []
    for identity, proved in found.items():
        owner = owners.get(identity)
        if owner is None:
            links.append(Link(identity, survivor, proved))
        elif proved and graph.root(owner) in members and identity not in graph.verified(owner):
            # A proof of an identity its contact only claimed: it is verified from now on.
            links.append(Link(identity, owner, True))

    suggested = {suggestion.other_contact_id for suggestion in suggestions}
    if suggest_claimed:
        for identity in claimed:
            root = root_of(identity)
            if root is None or root in members or root in suggested or graph.kept_apart(survivor, root):
                continue
            suggested.add(root)
            reason = f"{kind_of(identity)} {identity.partition(':')[2]} was only claimed (typed into a form or chat)"
            if clash := _clash(exclusive, _exclusive(graph.verified(root))):
                reason = f"{reason}, and {clash}"
            suggestions.append(_suggestion(graph, survivor, root, identity, reason))
    return Resolution(survivor, links, merges, suggestions)


def _suggestion(graph: ContactGraph, one: str, other: str, identity: str, reason: str) -> Suggestion:
    """The suggestion names the newer contact first: merged into the older one, as a message's merge would."""
    newer, older = sorted((one, other), key=lambda contact: (graph.created(contact), contact), reverse=True)
    return Suggestion(newer, older, identity, reason)


def _exclusive(identities: Iterable[str]) -> set[str]:
    return {identity for identity in identities if kind_of(identity) in EXCLUSIVE_KINDS}


def _clash(ours: Iterable[str], theirs: Iterable[str]) -> str | None:
    """Why two sets of verified channel accounts cannot be one person's, or None when they can."""
    theirs = set(theirs)
    for kind, label in EXCLUSIVE_KINDS.items():
        mine = {identity for identity in ours if kind_of(identity) == kind}
        other = {identity for identity in theirs if kind_of(identity) == kind}
        if mine and other and mine != other:
            return f"they are two different {label} users"
    return None


def resolution_events(
    message: InboundMessage, resolution: Resolution, graph: ContactGraph, now: datetime
) -> list[IdentityLinked | ContactMerged | MergeSuggested]:
    """The events of a message's resolution: identity links and verifications, merges, suggestions."""
    message_id = str(message.message_id)
    envelope = {"occurred_at": now, "correlation_id": message_id, "traceparent": message.traceparent}
    events: list[IdentityLinked | ContactMerged | MergeSuggested] = [
        IdentityLinked(
            event_id=derived_id(message_id, "identity_linked", link.identity),
            identity=link.identity,
            contact_id=link.contact_id,
            verified=link.verified,
            ticket_id=message.ticket_id,
            **envelope,
        )
        for link in resolution.links
    ]
    events += [
        ContactMerged(
            event_id=derived_id(message_id, "contact_merged", merge.contact_id),
            contact_id=merge.contact_id,
            survivor_id=merge.survivor_id,
            identities=sorted(graph.identities(merge.contact_id)),
            tickets=sorted(graph.tickets(merge.contact_id)),
            actor="system",
            identity=merge.identity,
            ticket_id=message.ticket_id,
            **envelope,
        )
        for merge in resolution.merges
    ]
    events += [
        MergeSuggested(
            event_id=derived_id(message_id, "merge_suggested", suggestion.other_contact_id),
            ticket_id=message.ticket_id,
            contact_id=suggestion.contact_id,
            other_contact_id=suggestion.other_contact_id,
            identity=suggestion.identity,
            reason=suggestion.reason,
            **envelope,
        )
        for suggestion in resolution.suggestions
    ]
    return events


class Refused(Exception):
    """A contact command that is not allowed; the message is the reason shown to whoever gave it."""


def decide_contact_command(
    command: MergeContacts | UnmergeContacts, graph: ContactGraph, known: set[str], config: DeskConfig, now: datetime
) -> list[ContactMerged | ContactUnmerged]:
    """The event of a manual merge or unmerge, none when it is done already (a redelivered command).

    `known` are the contact IDs that exist. Raises `Refused` with the reason: an actor who is neither a
    configured agent nor "admin", an unknown contact, a merge of a contact into itself or of a contact
    merged elsewhere, an unmerge of a contact that is not merged.
    """
    require_actor(command.agent_id, config)
    for contact_id in _named(command):
        if contact_id not in known:
            raise Refused(f"there is no contact {contact_id}")
    merged = command.contact_id
    envelope: dict[str, Any] = {
        "occurred_at": now,
        "contact_id": merged,
        "identities": sorted(graph.identities(merged)),
        "tickets": sorted(graph.tickets(merged)),
        "actor": command.agent_id,
        "ticket_id": command.ticket_id,
        "correlation_id": str(command.event_id),
        "traceparent": command.traceparent,
    }
    parent = graph.parents.get(merged)
    if isinstance(command, UnmergeContacts):
        if parent is None:
            raise Refused(f"{merged} is not merged into another contact")
        return [ContactUnmerged(event_id=derived_id(command.event_id, "unmerged"), survivor_id=parent, **envelope)]
    survivor = graph.root(command.into_contact_id)
    if parent is not None and parent == survivor:
        return []
    if survivor == graph.root(merged):
        raise Refused(f"{merged} and {command.into_contact_id} are one contact already")
    if parent is not None:
        raise Refused(f"{merged} is merged into {parent}: unmerge it first")
    return [ContactMerged(event_id=derived_id(command.event_id, "merged"), survivor_id=survivor, **envelope)]


def _named(command: MergeContacts | UnmergeContacts) -> list[str]:
    if isinstance(command, MergeContacts):
        return [command.contact_id, command.into_contact_id]
    return [command.contact_id]


def decide_keep_apart(
    command: KeepContactsApart, graph: ContactGraph, config: DeskConfig, now: datetime
) -> list[ContactsKeptApart]:
    """The `contact.kept_apart` of two contacts an agent says are two people, none when they are kept apart
    already (a redelivered command). Raises `Refused`: an actor who is neither a configured agent nor "admin",
    an unknown contact, two contacts that are one already (merged: unmerge instead)."""
    require_actor(command.agent_id, config)
    for contact_id in (command.contact_id, command.other_contact_id):
        if contact_id not in graph.contacts:
            raise Refused(f"there is no contact {contact_id}")
    if graph.root(command.contact_id) == graph.root(command.other_contact_id):
        raise Refused(f"{command.contact_id} and {command.other_contact_id} are one contact: unmerge them instead")
    if graph.kept_apart(command.contact_id, command.other_contact_id):
        return []
    return [
        ContactsKeptApart(
            event_id=derived_id(command.event_id, "kept_apart"),
            occurred_at=now,
            contact_id=command.contact_id,
            other_contact_id=command.other_contact_id,
            actor=command.agent_id,
            ticket_id=command.ticket_id,
            correlation_id=str(command.event_id),
            traceparent=command.traceparent,
        )
    ]


def require_actor(agent_id: str, config: DeskConfig) -> None:
    """Raises `Refused` unless `agent_id` is a configured agent or "admin" (the CLI): who may change contacts."""
    if agent_id != ADMIN and all(agent.id != agent_id for agent in config.agents):
        raise Refused(f"agent {agent_id!r} is not configured")
