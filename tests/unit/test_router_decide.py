"""The router's decisions (services.router.decide), fed directly: no Redis, no broker."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router.decide import Decision, KnownTicket, RouterView, decide_command, decide_inbound
from shared.config import load_config
from shared.events import (
    AddressUndeliverable,
    AgentReply,
    CommandRejected,
    IdentityLinked,
    InboundMessage,
    MessageAdded,
    ReplyRoute,
    Sender,
    TicketAssigned,
    TicketCreated,
    TicketMerged,
)
from shared.ids import derived_id
from shared.settings import EXAMPLE_CONFIG

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
CONFIG = load_config(EXAMPLE_CONFIG)
ANA = Sender(name="Ana", email="ana@example.com")


def inbound(
    ticket_id: str = "SB-1001",
    sender: Sender = ANA,
    *,
    channel: str = "email",
    kind: str = "message",
    route: ReplyRoute | None = None,
    **fields,
) -> InboundMessage:
    return InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id=ticket_id,
        received_at=NOW,
        channel=channel,
        kind=kind,
        channel_message_id=f"<{uuid.uuid4()}@mail.example>",
        source="smtp",
        sender=sender,
        subject="Cannot log in",
        text="help",
        reply_route=route,
        **fields,
    )


def email_route(address: str = "ana@example.com", reply_to_id: str = "first@mail.example") -> ReplyRoute:
    return ReplyRoute(channel="email", address=address, reply_to_id=reply_to_id)


def decided(message: InboundMessage, view: RouterView) -> Decision:
    """Decides and absorbs, as the handler does record after record."""
    decision = decide_inbound(message, view, CONFIG, NOW)
    view.absorb(decision.events)
    return decision


def of_type(decision: Decision, kind: type) -> list:
    return [event for event in decision.events if isinstance(event, kind)]


# --- a new ticket ----------------------------------------------------------------------------------


def test_a_new_ticket_is_created_assigned_and_its_sender_becomes_a_new_contact():
    message = inbound(route=email_route())
    decision = decided(message, RouterView())

    assert [event.type for event in decision.events] == [
        "ticket.created",
        "ticket.message_added",
        "ticket.assigned",
        "contact.identity_linked",
    ]
    created, added, assigned, link = decision.events
    contact_id = f"c_{derived_id('contact', message.message_id).hex[:16]}"
    assert isinstance(created, TicketCreated)
    assert created.contact.contact_id == contact_id and created.contact.identities == ["email:ana@example.com"]
    assert created.team == "support" and created.reply_route == message.reply_route
    assert isinstance(added, MessageAdded) and added.author == "customer" and added.contact_id == contact_id
    assert isinstance(assigned, TicketAssigned) and assigned.agent_id == "ana" and assigned.slack_user_id == "U0ANA"
    # Mail From is proved by the channel (within what SPF/DKIM checks): a verified link.
    assert isinstance(link, IdentityLinked)
    assert (link.identity, link.contact_id, link.verified) == ("email:ana@example.com", contact_id, True)
    assert decision.claims == {"email:ana@example.com": contact_id}


def test_a_sender_with_an_owned_identity_joins_that_contact_and_only_the_unowned_ones_are_linked():
    view = RouterView(owners={"phone:+34600123456": "c_known"})
    sender = Sender(name="Ana", email="Ana@Example.com", phone="+34 600 123 456")
    decision = decided(inbound(sender=sender, channel="form"), view)

    [created] = of_type(decision, TicketCreated)
    assert created.contact.contact_id == "c_known"
    assert created.contact.identities == ["email:ana@example.com", "phone:+34600123456"]
    [link] = of_type(decision, IdentityLinked)
    # Typed into a form: claimed, not proved.
    assert (link.identity, link.contact_id, link.verified) == ("email:ana@example.com", "c_known", False)
    assert view.owners == {"phone:+34600123456": "c_known", "email:ana@example.com": "c_known"}


def test_new_tickets_take_turns_after_the_counter_read_and_the_turns_this_batch_used():
    view = RouterView(turns={"support": 4})
    assignees = [
        of_type(decided(inbound(ticket_id, Sender(email=f"{ticket_id.lower()}@example.com")), view), TicketAssigned)
        for ticket_id in ("SB-1001", "SB-1002", "SB-1003")
    ]

    # Members [ana, ben, chloe]: turn 4 is ben's, then chloe's, then ana's again.
    assert [assigned.agent_id for [assigned] in assignees] == ["ben", "chloe", "ana"]
    assert view.used_turns == Counter({"support": 3})
    assert view.turns == {"support": 4}


def test_a_follow_up_joins_the_ticket_without_a_new_turn():
    view = RouterView()
    first = decided(inbound(route=email_route()), view)
    [created] = of_type(first, TicketCreated)
    later_route = email_route(reply_to_id="second@mail.example")

    follow_up = decided(inbound(route=later_route), view)

    [added] = follow_up.events
    assert isinstance(added, MessageAdded)
    assert added.contact_id == created.contact.contact_id and added.review is None
    assert view.used_turns == Counter({"support": 1})
    # Replies now answer the latest message.
    assert view.tickets["SB-1001"].reply_route == later_route


def test_a_follow_up_from_a_new_identity_of_the_contact_links_it():
    view = RouterView()
    [created] = of_type(decided(inbound(), view), TicketCreated)

    decision = decided(inbound(sender=Sender(name="Ana", telegram_user_id=42), channel="telegram"), view)

    assert [event.type for event in decision.events] == ["ticket.message_added", "contact.identity_linked"]
    [link] = of_type(decision, IdentityLinked)
    assert (link.identity, link.contact_id, link.verified) == ("telegram:42", created.contact.contact_id, True)


def test_an_email_from_another_person_on_the_thread_is_flagged_for_review_and_links_nothing():
    view = RouterView()
    first_route = email_route()
    [created] = of_type(decided(inbound(route=first_route), view), TicketCreated)
    bob_route = email_route("bob@example.com", "bob@mail.example")

    decision = decided(inbound(sender=Sender(name="Bob", email="bob@example.com"), route=bob_route), view)

    [added] = decision.events
    assert isinstance(added, MessageAdded)
    assert added.review == "the sender is not the ticket's contact"
    assert added.contact_id == created.contact.contact_id
    assert decision.claims == {} and "email:bob@example.com" not in view.owners
    # Replies keep going to the ticket's contact, not to whoever wrote into the thread.
    assert view.tickets["SB-1001"].reply_route == first_route


@pytest.mark.parametrize("kind", ["auto_reply", "bounce", "complaint"])
def test_machine_mail_is_recorded_on_an_existing_ticket_never_as_a_customer(kind):
    view = RouterView()
    decided(inbound(route=email_route()), view)
    turns = view.used_turns.copy()

    decision = decided(
        inbound(sender=Sender(email="mailer-daemon@mail.example"), kind=kind, route=email_route("x@mail.example")),
        view,
    )

    [added] = of_type(decision, MessageAdded)
    assert (added.author, added.kind, added.contact_id, added.reply_route) == ("system", kind, None, None)
    assert not of_type(decision, TicketCreated) and not of_type(decision, IdentityLinked)
    assert view.used_turns == turns
    assert view.tickets["SB-1001"].reply_route == email_route()


@pytest.mark.parametrize("kind", ["auto_reply", "complaint"])
def test_machine_mail_for_no_ticket_opens_none(kind):
    view = RouterView()
    decision = decided(inbound(sender=Sender(email="noreply@mail.example"), kind=kind), view)

    assert decision.events == []
    assert view.tickets == {} and view.used_turns == Counter()


def test_a_bounce_marks_each_bounced_address_undeliverable_once_normalised():
    view = RouterView()
    bounce = inbound(
        sender=Sender(email="mailer-daemon@mail.example"),
        kind="bounce",
        bounced_recipients=[" Ana@Example.com", "ana@example.com", "bob@example.com"],
    )

    decision = decided(bounce, view)

    undeliverable = of_type(decision, AddressUndeliverable)
    assert [event.identity for event in undeliverable] == ["email:ana@example.com", "email:bob@example.com"]
    assert [event.type for event in undeliverable] == ["contact.address_undeliverable"] * 2
    assert len({event.event_id for event in undeliverable}) == 2
    assert {event.ticket_id for event in undeliverable} == {"SB-1001"}
    # No ticket to record it on: the undeliverable addresses are all it causes.
    assert decision.events == undeliverable


def test_a_bounce_on_an_existing_ticket_is_recorded_too():
    view = RouterView()
    decided(inbound(), view)
    bounce = inbound(sender=Sender(email="mailer-daemon@mail.example"), kind="bounce", bounced_recipients=["a@b.c"])

    assert [event.type for event in decided(bounce, view).events] == [
        "contact.address_undeliverable",
        "ticket.message_added",
    ]


# --- agent commands ------------------------------------------------------------------------------


def reply(ticket_id: str) -> AgentReply:
    return AgentReply(event_id=uuid.uuid4(), occurred_at=NOW, ticket_id=ticket_id, text="Try again", agent_id="ana")


def test_a_reply_to_an_unknown_ticket_is_rejected_with_the_reason():
    command = reply("SB-9999")
    [rejected] = decide_command(command, RouterView(), CONFIG, NOW).events

    assert isinstance(rejected, CommandRejected)
    assert (rejected.command_id, rejected.reason) == (command.event_id, "there is no ticket SB-9999")


def test_a_reply_goes_to_the_tickets_latest_route():
    route = email_route()
    view = RouterView(tickets={"SB-1001": KnownTicket("c_1", "email", route, status="open", team="support")})
    command = reply("SB-1001")

    [added] = decide_command(command, view, CONFIG, NOW).events

    assert isinstance(added, MessageAdded)
    assert (added.author, added.agent_id, added.channel, added.reply_route) == ("agent", "ana", "email", route)
    assert added.correlation_id == str(command.event_id)


# --- what the view absorbs -----------------------------------------------------------------------


def test_absorbing_the_events_updates_tickets_routes_and_owners_first_link_wins():
    view = RouterView()
    message = inbound(route=email_route())
    events = decide_inbound(message, RouterView(), CONFIG, NOW).events
    [created] = [event for event in events if isinstance(event, TicketCreated)]

    view.absorb(events)
    known = view.tickets["SB-1001"]
    assert (known.contact_id, known.channel, known.reply_route) == (created.contact.contact_id, "email", email_route())
    assert (known.status, known.team, known.assignee_id) == ("new", "support", "ana")
    assert view.owners == {"email:ana@example.com": created.contact.contact_id}

    # Absorbing again (a remembered decision) changes nothing; a later link to another contact is refused.
    view.absorb(events)
    view.absorb([events[-1].model_copy(update={"contact_id": "c_other"})])
    assert view.owners == {"email:ana@example.com": created.contact.contact_id}

    # A machine message carries no route; a flagged one does not move the route.
    flagged = MessageAdded(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        ticket_id="SB-1001",
        message_id=uuid.uuid4(),
        author="customer",
        channel="email",
        text="me too",
        review="the sender is not the ticket's contact",
        reply_route=email_route("bob@example.com"),
        received_at=NOW,
    )
    view.absorb([flagged, flagged.model_copy(update={"author": "system", "review": None})])
    assert view.tickets["SB-1001"].reply_route == email_route()
    # A message on a ticket the view does not know adds no ticket.
    view.absorb([flagged.model_copy(update={"ticket_id": "SB-2000", "review": None})])
    assert set(view.tickets) == {"SB-1001"}


# --- property: a batch of any messages --------------------------------------------------------------

SENDERS = [
    Sender(name="Ana", email="ana@example.com"),
    Sender(name="Ana", email="ANA@example.com", phone="+34600123456"),
    Sender(phone="+34600123456", telegram_user_id=7),
    Sender(name="Bob", email="bob@example.com", phone="+34600123456"),
    Sender(name="Bob", email="bob@example.com", slack_user_id="U0CUST"),
    Sender(telegram_user_id=7, slack_user_id="U0OTHER"),
    Sender(telegram_user_id=8),
]
TICKETS = ["SB-1001", "SB-1002", "SB-1003", "SB-1004"]
PEOPLES_KINDS = ("message", "edit")

messages = st.lists(
    st.tuples(
        st.sampled_from(SENDERS),
        st.sampled_from(TICKETS),
        st.sampled_from(["email", "form", "chat", "telegram", "slack"]),
        st.sampled_from(["message", "message", "edit", "auto_reply", "bounce"]),
    ),
    max_size=40,
)


@given(messages)
def test_any_batch_opens_each_ticket_once_and_links_each_identity_to_one_contact(batch):
    view = RouterView()
    events = []
    for sender, ticket_id, channel, kind in batch:
        route = ReplyRoute(channel=channel, address=f"{ticket_id}-{channel}")
        bounced = [sender.email] if kind == "bounce" and sender.email else []
        message = inbound(ticket_id, sender, channel=channel, kind=kind, route=route, bounced_recipients=bounced)
        events += decided(message, view).events

    created = Counter(event.ticket_id for event in events if isinstance(event, TicketCreated))
    assigned = Counter(event.ticket_id for event in events if isinstance(event, TicketAssigned))
    # The same question from the same contact again is merged into the first ticket at birth (duplicates).
    merged = Counter(event.ticket_id for event in events if isinstance(event, TicketMerged))
    written_to_by_a_person = {ticket for _, ticket, _, kind in batch if kind in PEOPLES_KINDS}
    assert created == assigned + merged == Counter(dict.fromkeys(written_to_by_a_person, 1))
    assert sum(view.used_turns.values()) == sum(assigned.values())

    links: defaultdict[str, set[str]] = defaultdict(set)
    for event in events:
        if isinstance(event, IdentityLinked):
            links[event.identity].add(event.contact_id)
    assert all(len(contacts) == 1 for contacts in links.values()), dict(links)
    assert {identity: contact for identity, [contact] in links.items()} == view.owners


# --- a logged phone call ---------------------------------------------------------------------------


def call(agent_id: str) -> InboundMessage:
    return InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id="SB-1001",
        received_at=NOW,
        channel="phone",
        channel_message_id=f"call-{uuid.uuid4()}",
        source=f"call:{agent_id}",
        sender=Sender(name="Ana", phone="+34600123456"),
        subject="Phone call: card charged twice",
        text="[Inbound phone call, 9 min]\nCard charged twice",
        acknowledge=False,
    )


def test_a_logged_call_s_ticket_is_assigned_to_the_agent_who_took_it_whatever_their_load():
    agent = CONFIG.agent("chloe")
    view = RouterView(working={"chloe": agent.capacity})

    [assigned] = of_type(decided(call("chloe"), view), TicketAssigned)

    # Not a turn of the team's round robin (replay counts only the system's), and the card says they are over.
    assert (assigned.agent_id, assigned.actor, assigned.over_capacity) == ("chloe", "chloe", True)
    assert not view.used_turns and not view.capacity_checked


def test_a_call_logged_by_someone_outside_the_team_is_routed_as_usual():
    [assigned] = of_type(decided(call("nobody"), RouterView()), TicketAssigned)
    assert assigned.actor == "system"
