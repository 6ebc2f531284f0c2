"""The identity graph through the router's batch handler on real Redis: merges and suggestions in the read
model, manual merge and unmerge, and two router instances racing to merge one contact."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from services.router.decide import decide_command
from shared.engine import Record
from shared.events import InboundMessage, KeepContactsApart, MergeContacts, Sender, TagContact, UnmergeContacts
from shared.read_model import contact_apart_key

pytestmark = pytest.mark.integration

INBOUND_TOPIC, COMMANDS_TOPIC = "t.switchboard.inbound.v1", "t.switchboard.commands.v1"


def inbound(ticket_id: str, channel: str, sender: Sender) -> InboundMessage:
    return InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id=ticket_id,
        received_at=datetime.now(UTC),
        channel=channel,
        channel_message_id=str(uuid.uuid4()),
        source="test",
        sender=sender,
        text="help",
    )


def record(value, topic: str = INBOUND_TOPIC) -> Record:
    key = getattr(value, "ticket_id", None) or value.contact_id
    return Record(topic, 0, 0, key, datetime.now(UTC), value)


def types_of(result) -> list[str]:
    return [published.headers["event-type"] for published in result.publish]


async def test_a_telegram_share_of_a_phone_typed_into_a_form_makes_one_contact_of_both_tickets(handler):
    await handler.handle([record(inbound("SB-3001", "form", Sender(email="ana@example.com", phone="+34600123456")))])
    share = inbound("SB-3002", "telegram", Sender(telegram_user_id=77, phone="+34600123456"))

    await handler.handle([record(share)])

    form_ticket, telegram_ticket = [await handler.read_model.ticket(t) for t in ("SB-3001", "SB-3002")]
    contact = form_ticket["contact"]
    assert telegram_ticket["contact"] == contact
    assert contact["tickets"] == ["SB-3001", "SB-3002"] and contact["telegram_user_ids"] == ["77"]
    assert contact["verified"] == ["phone:+34600123456", "telegram:77"]


async def test_a_message_proving_two_contacts_are_one_merges_them_and_lookups_show_the_survivor(handler):
    await handler.handle([record(inbound("SB-3011", "form", Sender(email="bo@example.com", phone="+34600999888")))])
    await handler.handle([record(inbound("SB-3012", "telegram", Sender(telegram_user_id=88)))])
    older = (await handler.read_model.ticket("SB-3011"))["contact"]["id"]
    newer = (await handler.read_model.ticket("SB-3012"))["contact"]["id"]
    assert older != newer

    result = await handler.handle(
        [record(inbound("SB-3012", "telegram", Sender(telegram_user_id=88, phone="+34600999888")))]
    )

    assert "contact.merged" in types_of(result)
    [merged] = [published for published in result.publish if published.headers["event-type"] == "contact.merged"]
    assert merged.key == newer, "keyed by the merged contact, so that an unmerge follows it in order"
    survivor = await handler.read_model.contact(newer)
    assert survivor["id"] == older and survivor["merged_from"] == newer and survivor["merged_contacts"] == [newer]
    assert survivor["tickets"] == ["SB-3011", "SB-3012"]
    assert (await handler.read_model.ticket("SB-3012"))["contact"]["id"] == older


async def test_two_telegram_users_claiming_one_email_get_a_suggestion_on_the_ticket_not_a_merge(handler):
    await handler.handle([record(inbound("SB-3021", "telegram", Sender(telegram_user_id=1, email="cy@example.com")))])
    result = await handler.handle(
        [record(inbound("SB-3022", "telegram", Sender(telegram_user_id=2, email="cy@example.com")))]
    )

    assert "contact.merge_suggested" in types_of(result) and "contact.merged" not in types_of(result)
    first, second = [await handler.read_model.ticket(t) for t in ("SB-3021", "SB-3022")]
    assert first["contact"]["id"] != second["contact"]["id"]
    [suggested] = [entry for entry in second["history"] if entry["type"] == "contact.merge_suggested"]
    assert suggested["contacts"] == [second["contact"]["id"], first["contact"]["id"]]
    assert "two different Telegram users" in suggested["reason"]


async def test_contacts_kept_apart_on_the_real_redis_are_never_suggested_again(handler):
    await handler.handle([record(inbound("SB-3041", "telegram", Sender(telegram_user_id=3, email="ed@example.com")))])
    await handler.handle([record(inbound("SB-3042", "telegram", Sender(telegram_user_id=4, email="ed@example.com")))])
    first, second = [(await handler.read_model.ticket(t))["contact"]["id"] for t in ("SB-3041", "SB-3042")]
    keep = KeepContactsApart(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        agent_id="ana",
        ticket_id="SB-3042",
        contact_id=second,
        other_contact_id=first,
    )

    assert types_of(await handler.handle([record(keep, COMMANDS_TOPIC)])) == ["contact.kept_apart"]
    # Another agent's press of the same button: they are apart already.
    again = keep.model_copy(update={"event_id": uuid.uuid4(), "agent_id": "ben"})
    assert types_of(await handler.handle([record(again, COMMANDS_TOPIC)])) == []
    redis = handler.read_model.redis
    assert await redis.smembers(contact_apart_key(first)) == {second}
    assert await redis.smembers(contact_apart_key(second)) == {first}
    later = await handler.handle(
        [record(inbound("SB-3043", "telegram", Sender(telegram_user_id=4, email="ed@example.com")))]
    )
    assert "contact.merge_suggested" not in types_of(later)


async def test_after_a_merge_the_same_question_from_either_contacts_address_joins_the_earlier_ticket(handler):
    question = "I cannot log in to my account since yesterday, the password reset mail never arrives."

    async def ask(ticket_id: str, email: str, text: str = question):
        message = inbound(ticket_id, "email", Sender(email=email)).model_copy(update={"text": text})
        return await handler.handle([record(message)])

    await ask("SB-3071", "fay@example.com")
    await ask("SB-3072", "fay.work@example.com", "Where is my invoice for November?")
    survivor = (await handler.read_model.ticket("SB-3071"))["contact"]["id"]
    merged = (await handler.read_model.ticket("SB-3072"))["contact"]["id"]
    merge = MergeContacts(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), agent_id="ana", contact_id=merged,
        into_contact_id=survivor,
    )  # fmt: skip
    assert types_of(await handler.handle([record(merge, COMMANDS_TOPIC)])) == ["contact.merged"]

    # The merged contact's address still names it; the survivor's tickets are compared too.
    assert "ticket.merged" in types_of(await ask("SB-3073", "fay.work@example.com"))
    ticket = await handler.read_model.ticket("SB-3073")
    assert ticket["merged_into"] == "SB-3071" and ticket["contact"]["id"] == survivor
    # And the other way round: the merged contact's earlier ticket, asked again from the survivor's address.
    assert "ticket.merged" in types_of(await ask("SB-3074", "fay@example.com", "Where is my invoice for November?"))
    assert (await handler.read_model.ticket("SB-3074"))["merged_into"] == "SB-3072"


async def test_a_manual_merge_and_its_unmerge_round_trip(handler):
    await handler.handle([record(inbound("SB-3031", "email", Sender(email="di@example.com")))])
    await handler.handle([record(inbound("SB-3032", "email", Sender(email="di.work@example.com")))])
    one = (await handler.read_model.ticket("SB-3031"))["contact"]["id"]
    two = (await handler.read_model.ticket("SB-3032"))["contact"]["id"]
    now = datetime.now(UTC)
    merge = MergeContacts(event_id=uuid.uuid4(), occurred_at=now, agent_id="ana", contact_id=two, into_contact_id=one)

    result = await handler.handle([record(merge, COMMANDS_TOPIC)])

    assert types_of(result) == ["contact.merged"]
    contact = await handler.read_model.contact(one)
    assert contact["emails"] == ["di.work@example.com", "di@example.com"] and contact["tickets"] == [
        "SB-3031",
        "SB-3032",
    ]

    unmerge = UnmergeContacts(event_id=uuid.uuid4(), occurred_at=now, agent_id="admin", contact_id=two)
    assert types_of(await handler.handle([record(unmerge, COMMANDS_TOPIC)])) == ["contact.unmerged"]
    assert (await handler.read_model.contact(one))["tickets"] == ["SB-3031"]
    assert (await handler.read_model.contact(two))["tickets"] == ["SB-3032"]
    assert "merged_from" not in await handler.read_model.contact(two)


async def test_two_routers_merging_one_contact_into_different_survivors_conflict(handler):
    for ticket_id, email in (
        ("SB-3041", "e1@example.com"),
        ("SB-3042", "e2@example.com"),
        ("SB-3043", "e3@example.com"),
    ):
        await handler.handle([record(inbound(ticket_id, "email", Sender(email=email)))])
    one, two, three = [(await handler.read_model.ticket(t))["contact"]["id"] for t in ("SB-3041", "SB-3042", "SB-3043")]
    state, now = handler.state, datetime.now(UTC)
    into_one = MergeContacts(
        event_id=uuid.uuid4(), occurred_at=now, agent_id="ana", contact_id=two, into_contact_id=one
    )
    into_three = MergeContacts(
        event_id=uuid.uuid4(), occurred_at=now, agent_id="ben", contact_id=two, into_contact_id=three
    )
    # Both routers read the graph before either wrote.
    decisions = []
    for command in (into_one, into_three):
        _, view = await state.read(
            handled=[], identities=(), teams=(), contacts=(command.contact_id, command.into_contact_id)
        )
        decisions.append(decide_command(command, view, handler.config, now))

    won = await state.claim({}, {}, {}, decisions[0].events, merges=decisions[0].merges)
    lost = await state.claim({}, {}, {}, decisions[1].events, merges=decisions[1].merges)

    assert won == [] and len(lost) == 1
    assert (await handler.read_model.contact(two))["id"] == one
    # Decided again against what the winner wrote, the loser's merge is refused (merged elsewhere already).
    _, view = await state.read(handled=[], identities=(), teams=(), contacts=(two, three))
    assert (
        decide_command(into_three.model_copy(update={"ticket_id": "SB-3043"}), view, handler.config, now)
        .events[0]
        .reason.endswith("unmerge it first")
    )


async def test_a_merged_contact_is_tagged_through_its_survivor_and_its_next_ticket_carries_the_tags(handler):
    for ticket_id, email in (("SB-3051", "f1@example.com"), ("SB-3052", "f2@example.com")):
        await handler.handle([record(inbound(ticket_id, "email", Sender(email=email)))])
    one, two = [(await handler.read_model.ticket(t))["contact"]["id"] for t in ("SB-3051", "SB-3052")]
    now = datetime.now(UTC)
    merge = MergeContacts(event_id=uuid.uuid4(), occurred_at=now, agent_id="admin", contact_id=two, into_contact_id=one)
    tag = TagContact(event_id=uuid.uuid4(), occurred_at=now, agent_id="admin", contact_id=two, add=["vip"])

    result = await handler.handle([record(merge, COMMANDS_TOPIC), record(tag, COMMANDS_TOPIC)])

    assert types_of(result) == ["contact.merged", "contact.tags_changed"]
    assert result.publish[1].key == one
    assert (await handler.read_model.contact(two))["tags"] == ["vip"] == (await handler.read_model.contact(one))["tags"]
    # The router reads the tags with the rest of the graph when it decides a new ticket of the contact.
    # (Another question: the same one again would join the contact's earlier ticket as a duplicate.)
    question = inbound("SB-3053", "email", Sender(email="f2@example.com")).model_copy(update={"text": "An invoice?"})
    again = await handler.handle([record(question)])
    created = next(json.loads(published.value) for published in again.publish if b"ticket.created" in published.value)
    assert created["contact"]["contact_id"] == one and created["contact_tags"] == ["vip"]


async def test_two_routers_retagging_one_contact_conflict_and_the_loser_decides_again_on_the_new_tags(handler):
    await handler.handle([record(inbound("SB-3061", "email", Sender(email="g1@example.com")))])
    contact_id = (await handler.read_model.ticket("SB-3061"))["contact"]["id"]
    state, now = handler.state, datetime.now(UTC)
    vip, trial = (
        TagContact(event_id=uuid.uuid4(), occurred_at=now, agent_id="admin", contact_id=contact_id, add=[name])
        for name in ("vip", "trial")
    )
    # Both routers read the contact's tags before either wrote.
    decisions = []
    for command in (vip, trial):
        _, view = await state.read(handled=[], identities=(), teams=(), contacts=(contact_id,))
        decisions.append(decide_command(command, view, handler.config, now))

    won = await state.claim({}, {}, {}, decisions[0].events, tags=decisions[0].retagged)
    lost = await state.claim({}, {}, {}, decisions[1].events, tags=decisions[1].retagged)

    assert won == [] and len(lost) == 1
    _, view = await state.read(handled=[], identities=(), teams=(), contacts=(contact_id,))
    [again] = decide_command(trial, view, handler.config, now).events
    assert again.tags == ["trial", "vip"]
    assert await state.claim({}, {}, {}, [again], tags=decide_command(trial, view, handler.config, now).retagged) == []
    assert (await handler.read_model.contact(contact_id))["tags"] == ["trial", "vip"]
