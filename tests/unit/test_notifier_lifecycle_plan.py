"""What the notifier plans for the ticket lifecycle: cards and their updates, rejections, agents' thread
replies and notes, CSAT requests and low ratings (services.notifier.plan and .card_updates), fed directly."""

from __future__ import annotations

import uuid

import pytest

from services.notifier.card_updates import card_updates
from services.notifier.ledger import card_key, project_sent
from services.notifier.plan import NotifierView, TicketContext, plan, reply_outcome
from shared.conversations import conversation_key
from shared.csat import CsatSubject
from shared.events import (
    CommandRejected,
    CsatRated,
    MessageAdded,
    NotificationSent,
    PriorityChanged,
    ReplyRoute,
    SlackOrigin,
    SlaWarning,
    StatusChanged,
    TagsChanged,
    TicketQueued,
)
from tests.unit.test_notifier_plan import CONFIG, NOW, OPENED_BY, TICKET, assigned, email, envelope, summary

IN_THREAD = SlackOrigin(user_id="U0BEN", channel_id="C0SUPPORT", message_ts="1700.5", thread_ts="1700.1")


def view(*, assignee: str | None = "U0BEN", undeliverable: set[str] | None = None):
    context = TicketContext(team="support", opened_by=OPENED_BY, assignee_slack_user_id=assignee)
    return NotifierView(tickets={TICKET: context}, undeliverable=undeliverable or set())


def status(to: str = "pending", csat_route: ReplyRoute | None = None, resolution: int = 0) -> StatusChanged:
    return StatusChanged(
        **envelope(),
        from_status="open",
        to_status=to,
        actor="ben",
        team="support",
        assignee_id="ben",
        resolution=resolution,
        csat_route=csat_route,
    )


def agent_message(*, internal: bool = False, origin: SlackOrigin | None = None, route=None) -> MessageAdded:
    return MessageAdded(
        **envelope(correlation_id="command-1"),
        message_id=uuid.uuid4(),
        author="agent",
        agent_id="ben",
        channel="email",
        text="Please try again",
        reply_route=None if internal else route or email(),
        received_at=NOW,
        internal=internal,
        origin=origin,
    )


# --- cards ---------------------------------------------------------------------------------------


def test_an_assignment_announces_the_card_and_sends_it_to_the_assignee_with_no_update_on_top():
    event = assigned()

    planned = plan(event, view(), CONFIG)

    # A reassignment plans the same: the transport updates the channel's card in place when there is one.
    assert summary(planned) == [
        (f"{event.event_id}:channel", "announcement", "slack:C0SUPPORT"),
        (f"{event.event_id}:dm", "assignment_dm", "slack:U0BEN"),
    ]
    assert card_updates([event], planned, view(), CONFIG) == []


def test_a_batch_of_changes_updates_each_card_once_keyed_by_the_last_change():
    changes = [
        status("pending"),
        PriorityChanged(**envelope(), from_priority="normal", to_priority="urgent", actor="ben"),
        TagsChanged(**envelope(), added=["vip"], tags=["vip"], actor="ben"),
    ]

    updates = card_updates(changes, [], view(), CONFIG)

    last = changes[-1].event_id
    assert summary(updates) == [
        (f"{last}:card", "card_update", "slack:C0SUPPORT"),
        (f"{last}:dm-card", "card_update", "slack:U0BEN"),
    ]
    assert all(update.on_card and not update.digestible for update in updates)
    # A redelivered batch plans the very same updates (same keys: not made again).
    assert card_updates(changes, [], view(), CONFIG) == updates


def test_a_queued_ticket_updates_the_channels_card_only_and_an_sla_warning_updates_it_too():
    warning = SlaWarning(**envelope(), metric="first_response", due_at=NOW, fraction=0.75)
    assert [d.target for d in card_updates([warning], [], view(assignee=None), CONFIG)] == ["slack:C0SUPPORT"]


def test_a_ticket_handed_to_another_teams_queue_gets_a_card_there_and_updates_the_cards_it_left():
    queued = TicketQueued(**envelope(), team="billing", actor="lena", previous_agent_id="ben")
    # The read model has it in billing's queue already; its card so far is in support's channel.
    moved = NotifierView(
        tickets={TICKET: TicketContext(team="billing", opened_by=OPENED_BY, cards=("slack:C0SUPPORT",))}
    )

    planned = plan(queued, moved, CONFIG)
    updates = card_updates([queued], planned, moved, CONFIG)

    # The card in billing's channel becomes the ticket's thread there (updated in place if it had one).
    assert summary(planned) == [(f"{queued.event_id}:channel", "announcement", "slack:C0BILLING")]
    # Support's card and Ben's DM card show, one last time, where it went.
    assert summary(updates) == [
        (f"{queued.event_id}:left-card:slack:C0SUPPORT", "card_update", "slack:C0SUPPORT"),
        (f"{queued.event_id}:left-dm-card:U0BEN", "card_update", "slack:U0BEN"),
    ]
    # Later changes update the cards where the ticket is, not those it left.
    later = status("pending")
    assert [d.target for d in card_updates([later], [], moved, CONFIG)] == ["slack:C0BILLING"]


def test_a_ticket_assigned_to_another_team_gets_its_card_there_and_the_old_ones_are_updated():
    event = assigned(team="billing").model_copy(update={"previous_agent_id": "ana"})
    moved = NotifierView(
        tickets={
            TICKET: TicketContext(
                team="billing", opened_by=OPENED_BY, assignee_slack_user_id="U0BEN", cards=("slack:C0SUPPORT",)
            )
        }
    )

    planned = plan(event, moved, CONFIG)
    updates = card_updates([event], planned, moved, CONFIG)

    assert [d.target for d in planned] == ["slack:C0BILLING", "slack:U0BEN"]
    assert [d.target for d in updates] == ["slack:C0SUPPORT", "slack:U0ANA"]


# --- rejections ----------------------------------------------------------------------------------


def rejected(origin: SlackOrigin | None) -> CommandRejected:
    return CommandRejected(
        **envelope(),
        command_id=uuid.uuid4(),
        command_type="command.assign",
        agent_id="ben",
        reason="only the team lead can reassign Ana's ticket",
        origin=origin,
    )


def test_a_rejected_command_is_shown_to_its_agent_only_and_one_without_origin_to_nobody():
    event = rejected(SlackOrigin(user_id="U0BEN", channel_id="C0SUPPORT"))

    [ephemeral] = plan(event, view(), CONFIG)

    assert summary([ephemeral]) == [(f"{event.event_id}:rejection", "rejection", "slack:C0SUPPORT")]
    assert ephemeral.user == "U0BEN" and ephemeral.text == "only the team lead can reassign Ana's ticket"
    assert plan(rejected(None), view(), CONFIG) == []


# --- agents' replies and notes -------------------------------------------------------------------


def test_a_reply_typed_in_the_thread_goes_to_the_customer_and_is_not_mirrored_back():
    event = agent_message(origin=IN_THREAD)

    [reply] = plan(event, view(), CONFIG)
    delivered = reply_outcome(event, None, CONFIG, TicketContext(team="support"))
    failed = reply_outcome(event, "relay refused ana@customer.example", CONFIG, TicketContext(team="support"))

    assert summary([reply]) == [(str(event.event_id), "reply", "email:ana@customer.example")]
    assert [(d.purpose, d.target, d.message_ts, d.reaction) for d in delivered] == [
        ("reaction", "slack:C0SUPPORT", "1700.5", "white_check_mark")
    ]
    assert [(d.purpose, d.reaction, d.user) for d in failed] == [
        ("reaction", "warning", None),
        ("rejection", None, "U0BEN"),
    ]
    assert "relay refused" in failed[1].text


def test_a_reply_to_a_bounced_address_typed_in_the_thread_gets_the_warning_at_once():
    event = agent_message(origin=IN_THREAD)

    warning, why = plan(event, view(undeliverable={"ana@customer.example"}), CONFIG)

    assert (warning.reaction, warning.message_ts) == ("warning", "1700.5")
    assert why.user == "U0BEN" and "bounced" in why.text


@pytest.mark.parametrize("internal", [False, True], ids=["reply", "note"])
def test_what_an_agent_wrote_elsewhere_is_mirrored_with_their_name(internal):
    event = agent_message(internal=internal, origin=SlackOrigin(user_id="U0BEN", channel_id="C0SUPPORT"))

    planned = plan(event, view(), CONFIG)

    mirror = planned[-1]
    assert mirror.purpose == "mirror" and mirror.in_thread
    assert mirror.text.startswith("*Ben Okafor* (note):" if internal else "*Ben Okafor* replied:")
    # An internal note never reaches the customer.
    assert [d.purpose for d in planned] == (["mirror"] if internal else ["reply", "mirror"])


def test_a_note_typed_in_the_thread_plans_nothing():
    assert plan(agent_message(internal=True, origin=IN_THREAD), view(), CONFIG) == []


# --- CSAT ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "route",
    [
        email(),
        ReplyRoute(channel="telegram", address="4242"),
        ReplyRoute(channel="chat", address=TICKET),
        ReplyRoute(channel="slack", address="C0CUSTOMERS", reply_to_id="1700.1"),
    ],
    ids=lambda route: route.channel,
)
def test_a_resolution_asks_the_customer_for_a_rating_once_on_their_channel(route):
    event = status("solved", csat_route=route, resolution=2)

    [request] = plan(event, view(), CONFIG)

    assert summary([request]) == [(f"{event.event_id}:csat", "csat", f"{route.channel}:{route.address}")]
    assert request.csat == CsatSubject(TICKET, 2) and request.route == route
    assert request.thread_ts == ("1700.1" if route.channel == "slack" else None)
    assert request.subject == "[SB-1001] Re: Cannot log in" or route.channel != "email"


def test_no_rating_request_without_a_csat_route_or_to_a_bounced_address():
    assert plan(status("solved"), view(), CONFIG) == []
    bounced = status("solved", csat_route=email(), resolution=1)
    assert plan(bounced, view(undeliverable={"ana@customer.example"}), CONFIG) == []


@pytest.mark.parametrize(("score", "pinged"), [(1, True), (2, True), (3, False), (5, False)])
def test_a_low_rating_pings_the_team_lead_in_the_thread(score, pinged):
    event = CsatRated(**envelope(), resolution=1, score=score, comment="Took <!channel> days", team="support")

    planned = plan(event, view(), CONFIG)

    if not pinged:
        assert planned == []
        return
    [ping] = planned
    assert ping.in_thread and ping.target == "slack:C0SUPPORT"
    assert "<@U0LENA>" in ping.text and f"{score}/5" in ping.text and "&lt;!channel&gt;" in ping.text


# --- the ledger's projection (what `switchboard replay` rebuilds) --------------------------------


class RecordingPipe:
    def __init__(self) -> None:
        self.sets: dict[str, str] = {}

    def set(self, key: str, value: str, **_: object) -> None:
        self.sets[key] = value

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


@pytest.mark.parametrize(
    ("purpose", "target", "conversations"),
    [
        ("announcement", "slack:C0SUPPORT", ["slack:C0SUPPORT:1700.000100"]),
        ("assignment_dm", "slack:U0BEN", []),
    ],
)
def test_where_each_card_is_follows_from_its_notification_sent(purpose, target, conversations):
    sent = NotificationSent(
        **envelope(),
        key="e1:x",
        purpose=purpose,
        target=target,
        external_id="1700.000100",
        conversations=conversations,
    )
    pipe = RecordingPipe()

    project_sent(pipe, sent, NOW)

    assert pipe.sets[card_key(TICKET, target)] == "1700.000100"
    # The channel's card is the ticket's thread: agents' replies in it lead to the ticket.
    assert all(pipe.sets[conversation_key(key)] == TICKET for key in conversations)
