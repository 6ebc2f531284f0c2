"""What the notifier plans for each ticket event (services.notifier.plan), fed directly: no Redis, no Slack."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notifier.plan import Delivery, NotifierView, TicketContext, plan, unreachable
from shared.config import DeskConfig, load_config
from shared.events import (
    ContactSummary,
    MessageAdded,
    NotificationSent,
    ReplyRoute,
    Sender,
    SlaBreached,
    SlaDeadlineSet,
    SlaMet,
    SlaWarning,
    TicketAssigned,
    TicketCreated,
)
from shared.settings import EXAMPLE_CONFIG

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
TICKET = "SB-1001"
OPENED_BY = "0b7f1d0e-0000-4000-8000-000000000001"
ANA = ContactSummary(contact_id="c_1", name="Ana", email="ana@customer.example")


def config_with_billing() -> DeskConfig:
    """The example config plus a billing team with a channel of its own (the default team stays support)."""
    data = load_config(EXAMPLE_CONFIG).model_dump()
    data["teams"].append(
        {
            "id": "billing",
            "name": "Billing",
            "slack_channel": "C0BILLING",
            "members": ["chloe"],
            "sla_policy": "standard",
        }
    )
    return DeskConfig.model_validate(data)


CONFIG = config_with_billing()


def envelope(**fields) -> dict:
    return {"event_id": uuid.uuid4(), "occurred_at": NOW, "ticket_id": TICKET, "correlation_id": OPENED_BY, **fields}


def created(route: ReplyRoute | None, **fields) -> TicketCreated:
    return TicketCreated(
        **envelope(),
        channel=route.channel if route else "form",
        subject="Cannot log in",
        contact=ANA,
        team="support",
        category="general",
        priority="normal",
        reply_route=route,
        **fields,
    )


def assigned(team: str = "support") -> TicketAssigned:
    return TicketAssigned(
        **envelope(),
        team=team,
        agent_id="ben",
        agent_name="Ben Okafor",
        slack_user_id="U0BEN",
        subject="Cannot log in",
        contact=ANA,
        channel="email",
        priority="normal",
        excerpt="I cannot log in since Monday",
    )


def customer_message(correlation_id: str = OPENED_BY, **fields) -> MessageAdded:
    return MessageAdded(
        **envelope(correlation_id=correlation_id),
        message_id=uuid.uuid4(),
        author="customer",
        channel="email",
        text="Still broken",
        sender=Sender(name="Ana", email="ana@customer.example"),
        received_at=NOW,
        **fields,
    )


def agent_reply(route: ReplyRoute | None) -> MessageAdded:
    return MessageAdded(
        **envelope(correlation_id="reply-command"),
        message_id=uuid.uuid4(),
        author="agent",
        agent_id="ben",
        channel=route.channel if route else "form",
        text="Please try again",
        reply_route=route,
        received_at=NOW,
    )


def email(address: str = "ana@customer.example") -> ReplyRoute:
    return ReplyRoute(channel="email", address=address, reply_to_id="first@customer.example", subject="Cannot log in")


def view(team: str = "support", undeliverable: set[str] | None = None) -> NotifierView:
    return NotifierView(
        tickets={TICKET: TicketContext(team=team, opened_by=OPENED_BY, assignee_slack_user_id="U0BEN")},
        undeliverable=undeliverable or set(),
    )


def summary(deliveries: list[Delivery]) -> list[tuple[str, str, str]]:
    return [(delivery.key, delivery.purpose, delivery.target) for delivery in deliveries]


# --- acknowledgements ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "text"),
    [
        (email(), "Hello Ana,\n\nThank you for writing to us. Your request is ticket SB-1001"),
        (ReplyRoute(channel="telegram", address="4242"), "Thanks! Your request is ticket SB-1001."),
        (ReplyRoute(channel="slack", address="C0CUSTOMERS", reply_to_id="1700.1"), "This is ticket SB-1001;"),
    ],
)
def test_a_new_ticket_is_acknowledged_on_the_customers_channel(route, text):
    event = created(route)

    [ack] = plan(event, view(), CONFIG)

    assert summary([ack]) == [(f"{event.event_id}:ack", "acknowledgement", f"{route.channel}:{route.address}")]
    assert text in ack.text
    assert ack.route == route and ack.automatic
    assert ack.subject == "[SB-1001] Re: Cannot log in"
    # In Slack Connect the acknowledgement answers in the customer's own thread.
    assert ack.thread_ts == ("1700.1" if route.channel == "slack" else None)
    # A redelivered event plans the very same delivery (same key: never sent twice).
    assert plan(event, view(), CONFIG) == [ack]


@pytest.mark.parametrize(
    ("event", "undeliverable"),
    [
        (created(email("no-reply@shop.example")), set()),
        (created(email("MAILER-DAEMON@mx.example")), set()),
        (created(email("Ana@Customer.example")), {"ana@customer.example"}),
        (created(ReplyRoute(channel="chat", address="SB-1001")), set()),
        (created(email(), acknowledge=False), set()),
        (created(None), set()),
    ],
    ids=["no-reply", "mailer-daemon", "bounced-address", "web-chat", "loop-risk", "no-route"],
)
def test_no_acknowledgement_where_it_would_answer_a_machine_or_show_twice(event, undeliverable):
    assert plan(event, view(undeliverable=undeliverable), CONFIG) == []


def test_an_acknowledgement_to_an_address_typed_into_the_form_is_claimed():
    """Anyone may type anyone's address into the web form: its acknowledgement counts against the lower
    `claimed_*` limits (issue #16), unless the contact proved the address; an email's own sender does not."""
    typed_in = created(email()).model_copy(update={"channel": "form"})
    [typed] = plan(typed_in, view(), CONFIG)
    [written] = plan(created(email()), view(), CONFIG)
    assert typed.claimed and not written.claimed
    # An address its contact proved by writing from it is no claim any more.
    proved = NotifierView(verified={typed_in.contact.contact_id: frozenset({f"email:{typed.address.lower()}"})})
    [known] = plan(typed_in, proved, CONFIG)
    assert not known.claimed


# --- announcements -------------------------------------------------------------------------------


def test_an_assignment_is_announced_in_the_team_channel_and_sent_to_the_assignee():
    event = assigned()

    channel, dm = plan(event, view(), CONFIG)

    assert summary([channel, dm]) == [
        (f"{event.event_id}:channel", "announcement", "slack:C0SUPPORT"),
        (f"{event.event_id}:dm", "assignment_dm", "slack:U0BEN"),
    ]
    # The announcement quotes the opening message: it is not mirrored again.
    assert "I cannot log in since Monday" in channel.text and "<@U0BEN>" in channel.text
    assert not channel.in_thread and not dm.in_thread


def test_a_ticket_of_another_team_is_announced_in_that_teams_channel():
    channel, _ = plan(assigned("billing"), view("billing"), CONFIG)
    assert channel.target == "slack:C0BILLING"


def test_a_ticket_whose_team_was_removed_from_the_config_falls_back_to_the_default_teams_channel():
    channel, _ = plan(assigned("sales"), view("sales"), CONFIG)
    [mirror] = plan(customer_message("later"), view("sales"), CONFIG)
    [sla] = plan(SlaWarning(**envelope(), metric="first_response", due_at=NOW, fraction=0.75), view("sales"), CONFIG)

    assert channel.target == mirror.target == sla.target == "slack:C0SUPPORT"


# --- messages ------------------------------------------------------------------------------------


def test_the_opening_message_is_not_mirrored_later_ones_are_in_the_thread():
    assert plan(customer_message(OPENED_BY), view(), CONFIG) == []

    later = customer_message("a-later-message")
    [mirror] = plan(later, view("billing"), CONFIG)

    assert summary([mirror]) == [(f"{later.event_id}:mirror", "mirror", "slack:C0BILLING")]
    assert mirror.in_thread and "Still broken" in mirror.text


def test_a_message_flagged_for_review_is_mirrored_with_the_warning():
    flagged = customer_message("from-bob", review="the sender is not the ticket's contact")
    [mirror] = plan(flagged, view(), CONFIG)
    assert "review before answering" in mirror.text


def test_an_agent_reply_goes_to_the_customer_and_is_mirrored():
    event = agent_reply(email())

    reply, mirror = plan(event, view(), CONFIG)

    assert summary([reply, mirror]) == [
        (str(event.event_id), "reply", "email:ana@customer.example"),
        (f"{event.event_id}:mirror", "mirror", "slack:C0SUPPORT"),
    ]
    assert reply.text == "Please try again" and reply.route == email() and not reply.automatic
    assert reply.subject == "[SB-1001] Re: Cannot log in"
    assert reply.message_id == str(event.message_id) and reply.at == NOW.isoformat()
    assert mirror.in_thread and "Please try again" in mirror.text


def test_an_agent_reply_to_a_bounced_address_or_without_a_route_is_only_mirrored():
    bounced = plan(agent_reply(email("ANA@customer.example")), view(undeliverable={"ana@customer.example"}), CONFIG)
    no_route = plan(agent_reply(None), view(), CONFIG)

    assert [delivery.purpose for delivery in bounced] == ["mirror"]
    assert [delivery.purpose for delivery in no_route] == ["mirror"]


def whatsapp(customer_wrote_at: datetime | None) -> ReplyRoute:
    return ReplyRoute(channel="whatsapp", address="34600111222", customer_wrote_at=customer_wrote_at)


def test_the_customer_is_reachable_on_a_live_route():
    assert unreachable(email(), NOW, view(), CONFIG) is None
    assert unreachable(email(), NOW, view(), CONFIG, automatic=True) is None
    assert unreachable(whatsapp(NOW - timedelta(hours=23)), NOW, view(), CONFIG) is None
    assert unreachable(ReplyRoute(channel="telegram", address="42"), NOW, view(), CONFIG) is None


def test_no_route_or_a_bounced_address_is_unreachable():
    assert unreachable(None, NOW, view(), CONFIG) == "the ticket has no channel to answer the customer on"
    bounced = view(undeliverable={"ana@customer.example"})
    assert unreachable(email("ANA@customer.example"), NOW, bounced, CONFIG) == (
        "mail to ANA@customer.example bounced; nothing more is sent to that address"
    )


def test_a_no_reply_address_is_unreachable_for_automatic_messages_only():
    assert unreachable(email("no-reply@shop.example"), NOW, view(), CONFIG) is None
    assert "no-reply" in unreachable(email("no-reply@shop.example"), NOW, view(), CONFIG, automatic=True)


def test_whatsapp_outside_the_window_is_unreachable_and_the_agent_is_told_the_template():
    late = unreachable(whatsapp(NOW - timedelta(hours=25)), NOW, view(), CONFIG)
    never = unreachable(whatsapp(None), NOW, view(), CONFIG)

    template = CONFIG.whatsapp.template
    assert late and template and f"`{template.name}`" in late and "more than 24 hours ago" in late
    assert never and "has not written on WhatsApp" in never


# --- SLA -----------------------------------------------------------------------------------------


def test_a_warning_mentions_the_assignee_and_a_breach_the_teams_lead_in_the_thread():
    warning = SlaWarning(**envelope(), metric="first_response", due_at=NOW + timedelta(hours=1), fraction=0.75)
    breach = SlaBreached(**envelope(), metric="first_response", due_at=NOW)

    [warned] = plan(warning, view(), CONFIG)
    [breached] = plan(breach, view(), CONFIG)

    assert summary([warned, breached]) == [
        (f"{warning.event_id}:sla", "sla", "slack:C0SUPPORT"),
        (f"{breach.event_id}:sla", "sla", "slack:C0SUPPORT"),
    ]
    assert warned.in_thread and breached.in_thread
    assert "<@U0BEN>" in warned.text and "75%" in warned.text
    assert "<@U0LENA>" in breached.text


def test_a_breach_in_a_team_without_a_lead_mentions_the_assignee():
    [breached] = plan(SlaBreached(**envelope(), metric="first_response", due_at=NOW), view("billing"), CONFIG)
    assert breached.target == "slack:C0BILLING" and "<@U0BEN>" in breached.text


@pytest.mark.parametrize(
    "event",
    [
        SlaDeadlineSet(**envelope(), metric="first_response", policy="standard", due_at=NOW),
        SlaMet(**envelope(), metric="first_response", due_at=NOW, met_at=NOW),
        NotificationSent(**envelope(), key="k:ack", purpose="acknowledgement", target="email:ana@customer.example"),
    ],
    ids=lambda event: event.type,
)
def test_events_that_tell_nobody_anything_plan_nothing(event):
    assert plan(event, view(), CONFIG) == []
