"""The identity graph's decisions (services.router.contacts), through the router's pure decide functions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router.contacts import ContactGraph, ContactRecord, sender_identities
from services.router.decide import Decision, RouterView, decide_command, decide_inbound
from shared.config import load_config
from shared.events import (
    CommandRejected,
    ContactMerged,
    ContactsKeptApart,
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
from shared.settings import EXAMPLE_CONFIG

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONFIG = load_config(EXAMPLE_CONFIG)
X, P = "ana@example.com", "+34600123456"


def inbound(sender: Sender, channel: str, ticket_id: str = "SB-1001", at: datetime = NOW) -> InboundMessage:
    return InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id=ticket_id,
        received_at=at,
        channel=channel,
        channel_message_id=str(uuid.uuid4()),
        source="test",
        sender=sender,
        text="help",
    )


def decided(message: InboundMessage, view: RouterView, at: datetime = NOW) -> Decision:
    decision = decide_inbound(message, view, CONFIG, at)
    view.absorb(decision.events)
    return decision


def of_type(decision: Decision, kind: type) -> list:
    return [event for event in decision.events if isinstance(event, kind)]


def contact_of(decision: Decision) -> str:
    [created] = of_type(decision, TicketCreated)
    return created.contact.contact_id


@pytest.mark.parametrize(
    ("channel", "sender", "verified"),
    [
        ("email", Sender(email=X), {f"email:{X}": True}),
        ("form", Sender(email=X, phone=P), {f"email:{X}": False, f"phone:{P}": False}),
        ("chat", Sender(email=X), {f"email:{X}": False}),
        ("telegram", Sender(telegram_user_id=7, phone=P), {f"phone:{P}": True, "telegram:7": True}),
        # An address a Telegram user gives is only their word.
        ("telegram", Sender(telegram_user_id=7, email=X), {f"email:{X}": False, "telegram:7": True}),
        ("slack", Sender(slack_user_id="U1", email=X), {f"email:{X}": True, "slack:U1": True}),
    ],
)
def test_the_channel_decides_which_identities_are_verified_and_which_claimed(channel, sender, verified):
    assert sender_identities(channel, sender) == verified


def test_a_form_then_a_telegram_share_of_the_same_phone_is_one_contact_and_the_phone_becomes_verified():
    view = RouterView()
    form = decided(inbound(Sender(name="Ana", email=X, phone=P), "form"), view)
    contact = contact_of(form)
    assert {(link.identity, link.verified) for link in of_type(form, IdentityLinked)} == {
        (f"email:{X}", False),
        (f"phone:{P}", False),
    }

    share = decided(inbound(Sender(telegram_user_id=7, phone=P), "telegram", "SB-1002"), view)

    assert contact_of(share) == contact
    assert {(link.identity, link.contact_id, link.verified) for link in of_type(share, IdentityLinked)} == {
        ("telegram:7", contact, True),
        (f"phone:{P}", contact, True),
    }
    assert not of_type(share, ContactMerged) and not of_type(share, MergeSuggested)
    assert view.graph.verified(contact) == {f"phone:{P}", "telegram:7"}
    assert view.graph.tickets(contact) == {"SB-1001", "SB-1002"}


def test_a_telegram_user_who_proves_a_phone_another_contact_typed_merges_into_the_older_contact():
    view = RouterView()
    form_contact = contact_of(decided(inbound(Sender(email=X, phone=P), "form"), view))
    later = NOW + timedelta(minutes=5)
    telegram_contact = contact_of(
        decided(inbound(Sender(telegram_user_id=7), "telegram", "SB-1002", later), view, later)
    )
    assert telegram_contact != form_contact

    # The phone shared on the Telegram ticket proves both identities belong to one person.
    share = decided(inbound(Sender(telegram_user_id=7, phone=P), "telegram", "SB-1002", later), view, later)

    [merged] = of_type(share, ContactMerged)
    assert (merged.contact_id, merged.survivor_id, merged.identity) == (telegram_contact, form_contact, f"phone:{P}")
    assert merged.identities == ["telegram:7"] and merged.tickets == ["SB-1002"] and merged.actor == "system"
    assert share.merges == {telegram_contact: form_contact}
    assert view.graph.root(telegram_contact) == form_contact
    assert view.graph.tickets(form_contact) == {"SB-1001", "SB-1002"}


def test_two_telegram_users_claiming_one_email_are_not_merged_and_agents_get_a_suggestion():
    view = RouterView()
    first = contact_of(decided(inbound(Sender(telegram_user_id=7, email=X), "telegram"), view))

    second = decided(inbound(Sender(telegram_user_id=8, email=X), "telegram", "SB-1002"), view)

    other = contact_of(second)
    assert other != first and not of_type(second, ContactMerged)
    [suggestion] = of_type(second, MergeSuggested)
    assert (suggestion.contact_id, suggestion.other_contact_id, suggestion.identity) == (other, first, f"email:{X}")
    assert "only claimed" in suggestion.reason and "two different Telegram users" in suggestion.reason
    assert suggestion.ticket_id == "SB-1002"
    # The address stays with whoever gave it first; the second user is linked only to their own account.
    assert [link.identity for link in of_type(second, IdentityLinked)] == ["telegram:8"]


def test_an_address_given_on_an_existing_telegram_ticket_that_another_user_holds_is_suggested():
    view = RouterView()
    first = contact_of(decided(inbound(Sender(telegram_user_id=7), "telegram"), view))
    decided(inbound(Sender(telegram_user_id=7, email=X), "telegram"), view)
    later = NOW + timedelta(minutes=1)
    second = contact_of(decided(inbound(Sender(telegram_user_id=8), "telegram", "SB-1002"), view, later))

    given = decided(inbound(Sender(telegram_user_id=8, email=X), "telegram", "SB-1002"), view)

    [suggestion] = of_type(given, MergeSuggested)
    assert (suggestion.contact_id, suggestion.other_contact_id) == (second, first)
    assert not of_type(given, ContactMerged) and not of_type(given, IdentityLinked)


def test_two_telegram_users_proving_one_phone_are_refused_and_flagged():
    view = RouterView()
    first = contact_of(decided(inbound(Sender(telegram_user_id=7, phone=P), "telegram"), view))

    # A recycled number: another Telegram account shares it as its own.
    second = decided(inbound(Sender(telegram_user_id=8, phone=P), "telegram", "SB-1002"), view)

    assert contact_of(second) != first and not of_type(second, ContactMerged)
    [suggestion] = of_type(second, MergeSuggested)
    assert suggestion.other_contact_id == first and suggestion.reason == "they are two different Telegram users"
    assert [link.identity for link in of_type(second, IdentityLinked)] == ["telegram:8"]


def test_a_claimed_identity_attaches_a_new_ticket_but_never_merges_nor_upgrades():
    view = RouterView()
    owner = contact_of(decided(inbound(Sender(email=X), "email"), view))
    later = NOW + timedelta(minutes=1)
    phone_owner = contact_of(decided(inbound(Sender(email="bo@example.com", phone=P), "form", "SB-1002"), view, later))

    form = decided(inbound(Sender(email=X, phone=P), "form", "SB-1003"), view)

    assert contact_of(form) == owner
    assert not of_type(form, ContactMerged) and not of_type(form, IdentityLinked)
    [suggestion] = of_type(form, MergeSuggested)
    # Named newer first: "Merge" keeps the older contact.
    assert (suggestion.contact_id, suggestion.other_contact_id) == (phone_owner, owner)
    assert view.graph.verified(owner) == {f"email:{X}"}


def test_another_slack_user_in_a_ticket_s_thread_links_nothing_to_its_contact():
    view = RouterView()
    contact = contact_of(decided(inbound(Sender(slack_user_id="U1", email=X), "slack"), view))

    colleague = decided(inbound(Sender(slack_user_id="U2", email="bo@example.com"), "slack"), view)

    assert not of_type(colleague, IdentityLinked) and not of_type(colleague, MergeSuggested)
    assert view.graph.identities(contact) == {f"email:{X}", "slack:U1"}


def test_a_chat_on_an_existing_ticket_does_not_repeat_claimed_suggestions():
    view = RouterView()
    decided(inbound(Sender(email=X), "email"), view)
    decided(inbound(Sender(email="bo@example.com"), "chat", "SB-1002"), view)

    again = decided(inbound(Sender(email=X), "chat", "SB-1002"), view)

    assert not of_type(again, MergeSuggested) and not of_type(again, ContactMerged)


def command(kind: type, **fields) -> MergeContacts | UnmergeContacts | KeepContactsApart:
    return kind(**{"event_id": uuid.uuid4(), "occurred_at": NOW, "agent_id": "admin", **fields})


def graph_of_two() -> RouterView:
    graph = ContactGraph(
        contacts={
            "c_one": ContactRecord(identities=frozenset({"telegram:7"}), tickets=frozenset({"SB-1001"}), created=1),
            "c_two": ContactRecord(identities=frozenset({"telegram:8"}), tickets=frozenset({"SB-1002"}), created=2),
        }
    )
    return RouterView(graph=graph)


def test_a_manual_merge_then_unmerge_moves_identities_and_tickets_and_back():
    view = graph_of_two()

    merge = decide_command(command(MergeContacts, contact_id="c_two", into_contact_id="c_one"), view, CONFIG, NOW)
    view.absorb(merge.events)

    [merged] = merge.events
    assert isinstance(merged, ContactMerged) and merged.survivor_id == "c_one" and merged.actor == "admin"
    assert (merged.identities, merged.tickets) == (["telegram:8"], ["SB-1002"])
    assert view.graph.tickets("c_one") == {"SB-1001", "SB-1002"}

    unmerge = decide_command(command(UnmergeContacts, contact_id="c_two"), view, CONFIG, NOW)
    view.absorb(unmerge.events)

    [unmerged] = unmerge.events
    assert isinstance(unmerged, ContactUnmerged) and unmerged.survivor_id == "c_one"
    assert (unmerged.identities, unmerged.tickets) == (["telegram:8"], ["SB-1002"])
    assert view.graph.root("c_two") == "c_two" and view.graph.tickets("c_one") == {"SB-1001"}
    assert unmerge.merges == {"c_two": "c_one"}


def test_a_merge_already_done_decides_nothing_again():
    view = graph_of_two()
    view.graph.parents["c_two"] = "c_one"

    repeated = decide_command(command(MergeContacts, contact_id="c_two", into_contact_id="c_one"), view, CONFIG, NOW)

    assert repeated.events == []


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"agent_id": "mallory", "contact_id": "c_two", "into_contact_id": "c_one"}, "not configured"),
        ({"contact_id": "c_nobody", "into_contact_id": "c_one"}, "there is no contact c_nobody"),
        ({"contact_id": "c_one", "into_contact_id": "c_one"}, "one contact already"),
    ],
)
def test_a_refused_merge_from_a_ticket_is_rejected_on_that_ticket(fields, reason):
    merge = MergeContacts(event_id=uuid.uuid4(), occurred_at=NOW, ticket_id="SB-1001", **{"agent_id": "ana", **fields})

    [rejection] = decide_command(merge, graph_of_two(), CONFIG, NOW).events

    assert isinstance(rejection, CommandRejected) and reason in rejection.reason
    assert rejection.ticket_id == "SB-1001" and rejection.command_type == "command.merge_contacts"


def test_an_unmerge_of_a_contact_that_is_not_merged_is_refused():
    unmerge = UnmergeContacts(event_id=uuid.uuid4(), occurred_at=NOW, agent_id="ana", contact_id="c_two")
    assert decide_command(unmerge, graph_of_two(), CONFIG, NOW).events == []
    unmerge = unmerge.model_copy(update={"ticket_id": "SB-1002"})
    [rejection] = decide_command(unmerge, graph_of_two(), CONFIG, NOW).events
    assert "not merged" in rejection.reason


CONTACT_IDS = [f"c_{index}" for index in range(5)]


def five_contacts() -> RouterView:
    return RouterView(
        graph=ContactGraph(
            contacts={
                contact_id: ContactRecord(
                    identities=frozenset({f"email:{contact_id}@example.com"}),
                    tickets=frozenset({f"SB-{1000 + index}"}),
                    created=index,
                )
                for index, contact_id in enumerate(CONTACT_IDS)
            }
        )
    )


@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from(CONTACT_IDS), st.sampled_from(CONTACT_IDS)),
        max_size=30,
    )
)
def test_any_merges_and_unmerges_keep_every_ticket_under_exactly_one_root_and_unmerging_all_restores_them(steps):
    view = five_contacts()
    for merging, contact_id, other in steps:
        fields = {"contact_id": contact_id, **({"into_contact_id": other} if merging else {})}
        decision = decide_command(command(MergeContacts if merging else UnmergeContacts, **fields), view, CONFIG, NOW)
        view.absorb(decision.events)
        roots = {view.graph.root(contact) for contact in CONTACT_IDS}
        assert all(view.graph.root(root) == root for root in roots), "no cycles"
        tickets = [ticket for root in roots for ticket in view.graph.tickets(root)]
        assert sorted(tickets) == [f"SB-{1000 + index}" for index in range(5)], "each ticket under one root"
    for contact_id in reversed(CONTACT_IDS * 2):
        view.absorb(decide_command(command(UnmergeContacts, contact_id=contact_id), view, CONFIG, NOW).events)
    assert view.graph.parents == {}
    assert all(view.graph.tickets(contact) == five_contacts().graph.tickets(contact) for contact in CONTACT_IDS)


senders = st.builds(
    Sender,
    email=st.sampled_from([None, "a@example.com", "b@example.com"]),
    phone=st.sampled_from([None, "+34600000001", "+34600000002"]),
    telegram_user_id=st.sampled_from([None, 1, 2]),
    slack_user_id=st.sampled_from([None, "U1", "U2"]),
)


@given(
    st.lists(
        st.tuples(st.sampled_from(["email", "form", "chat", "telegram", "slack"]), senders, st.integers(1, 4)),
        max_size=25,
    )
)
def test_no_message_takes_an_identity_from_its_contact_merges_on_a_claim_or_joins_two_accounts_of_a_channel(messages):
    view = RouterView()
    for channel, sender, ticket in messages:
        if channel == "email" and not sender.email:
            continue
        before = dict(view.owners)
        decision = decided(inbound(sender, channel, f"SB-{1000 + ticket}"), view)
        for link in of_type(decision, IdentityLinked):
            assert before.get(link.identity) in (None, link.contact_id), "the first link wins"
            assert not link.verified or sender_identities(channel, sender)[link.identity], "verified only if proved"
        if channel in ("form", "chat"):
            assert not of_type(decision, ContactMerged), "a claim never merges"
        for root in {view.graph.root(contact) for contact in view.graph.contacts}:
            verified = view.graph.verified(root)
            for kind in ("telegram", "slack"):
                assert len({identity for identity in verified if identity.startswith(f"{kind}:")}) <= 1


# --- kept apart ------------------------------------------------------------------------------------


def test_two_users_kept_apart_are_not_suggested_again_and_keeping_them_apart_twice_decides_nothing():
    view = RouterView()
    first = contact_of(decided(inbound(Sender(telegram_user_id=7, email=X), "telegram"), view))
    second = contact_of(decided(inbound(Sender(telegram_user_id=8, email=X), "telegram", "SB-1002"), view))

    keep = command(KeepContactsApart, contact_id=second, other_contact_id=first, ticket_id="SB-1002", agent_id="ana")
    [kept] = decide_command(keep, view, CONFIG, NOW).events
    view.absorb([kept])

    assert isinstance(kept, ContactsKeptApart) and (kept.contact_id, kept.other_contact_id) == (second, first)
    assert kept.actor == "ana" and view.graph.kept_apart(first, second) and view.graph.kept_apart(second, first)
    # The same Telegram user claiming the address again, on a new ticket: nothing to suggest any more.
    again = decided(inbound(Sender(telegram_user_id=8, email=X), "telegram", "SB-1003"), view)
    assert not of_type(again, MergeSuggested) and contact_of(again) == second
    assert decide_command(keep, view, CONFIG, NOW).events == []
    # A manual merge may still join them.
    [merged] = decide_command(
        command(MergeContacts, contact_id=second, into_contact_id=first), view, CONFIG, NOW
    ).events
    assert isinstance(merged, ContactMerged)


def test_keeping_apart_one_contact_or_an_unknown_one_is_refused_on_the_ticket():
    view = graph_of_two()
    view.graph.parents["c_two"] = "c_one"
    for other, reason in (("c_one", "one contact"), ("c_nobody", "there is no contact c_nobody")):
        keep = command(KeepContactsApart, contact_id="c_two", other_contact_id=other, ticket_id="SB-1002")
        [rejection] = decide_command(keep, view, CONFIG, NOW).events
        assert isinstance(rejection, CommandRejected) and reason in rejection.reason
