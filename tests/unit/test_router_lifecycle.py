"""The ticket lifecycle's rules (services.router.lifecycle), fed directly: no Redis, no broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.router.decide import KnownTicket, RouterView, decide_command, decide_inbound
from services.router.lifecycle import allowed_transition
from services.router.tickets import handled_event_id
from shared.config import load_config
from shared.events import (
    ACTIVE_STATUSES,
    AgentNote,
    AgentReply,
    AssignTicket,
    ClaimTicket,
    CommandRejected,
    CsatRated,
    EscalateTicket,
    InboundMessage,
    MergeTicket,
    MessageAdded,
    PriorityChanged,
    RateTicket,
    ReplyRoute,
    Sender,
    SetPriority,
    SetStatus,
    SlackOrigin,
    StatusChanged,
    TagsChanged,
    TagTicket,
    TicketAssigned,
    TicketEscalated,
    TicketMerged,
    TicketQueued,
)
from shared.settings import EXAMPLE_CONFIG

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
CONFIG = load_config(EXAMPLE_CONFIG)  # support: lead lena, members ana ben chloe, escalation [lena]
ROUTE = ReplyRoute(channel="email", address="cy@example.com", reply_to_id="first@mail.example")
ORIGIN = SlackOrigin(user_id="U0BEN", channel_id="C0SUPPORT")


def ticket(**fields) -> KnownTicket:
    defaults = {"channel": "email", "reply_route": ROUTE, "status": "open", "team": "support", "assignee_id": "ana"}
    return KnownTicket("c_1", **{**defaults, "subject": "Cannot log in", **fields})


def view_of(*tickets: tuple[str, KnownTicket]) -> RouterView:
    return RouterView(tickets=dict(tickets))


def command(kind: type, agent: str = "ana", ticket_id: str = "SB-1001", **fields):
    return kind(event_id=uuid.uuid4(), occurred_at=NOW, ticket_id=ticket_id, agent_id=agent, origin=ORIGIN, **fields)


def decide(given_command, view: RouterView) -> list:
    """Decides and absorbs, as the handler does."""
    events = decide_command(given_command, view, CONFIG, NOW).events
    view.absorb(events)
    return events


def refusal(given_command, view: RouterView) -> str:
    [rejected] = decide(given_command, view)
    assert isinstance(rejected, CommandRejected)
    assert rejected.event_id == handled_event_id(given_command), "the rejection marks the command handled"
    assert (rejected.command_id, rejected.agent_id, rejected.origin) == (
        given_command.event_id,
        given_command.agent_id,
        ORIGIN,
    )
    return rejected.reason


# --- who may give commands ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_command", "reason"),
    [
        (command(ClaimTicket, "zed"), "agent 'zed' is not configured"),
        (command(ClaimTicket, ticket_id="SB-9999"), "there is no ticket SB-9999"),
        (
            command(SetStatus, "system", status="pending"),
            "the system only closes solved tickets, escalates and raises priorities",
        ),
        (command(ClaimTicket, "system"), "the system only closes solved tickets, escalates and raises priorities"),
        (command(SetStatus, "system", status="closed"), "the system only closes solved tickets"),
        (
            command(SetPriority, "customer", priority="high"),
            "the customer can only rate a ticket or say an article solved it",
        ),
        (command(RateTicket, "ana", resolution=1, score=5), "only the customer rates a ticket"),
        (command(ClaimTicket, "admin"), "only an agent can claim a ticket: name one"),
    ],
)
def test_commands_from_the_wrong_actor_or_for_an_unknown_ticket_are_refused(given_command, reason):
    assert refusal(given_command, view_of(("SB-1001", ticket()))) == reason


@pytest.mark.parametrize(
    "given_command",
    [
        command(ClaimTicket, "ben"),
        command(AgentReply, text="hello?"),
        command(AgentNote, text="hm"),
        command(SetStatus, status="open"),
        command(SetPriority, priority="high"),
        command(TagTicket, add=["vip"]),
        command(EscalateTicket),
        command(AssignTicket, to_team="support"),
    ],
)
def test_a_closed_ticket_takes_no_command_but_a_rating(given_command):
    view = view_of(("SB-1001", ticket(status="closed", resolutions=1)))
    assert refusal(given_command, view) == "SB-1001 is closed"
    [rated] = decide(command(RateTicket, "customer", resolution=1, score=4, comment="fine"), view)
    assert isinstance(rated, CsatRated) and (rated.score, rated.assignee_id, rated.team) == (4, "ana", "support")


# --- claim and assign ------------------------------------------------------------------------------


def test_claiming_anothers_new_ticket_makes_the_claimer_the_assignee_and_opens_it():
    view = view_of(("SB-1001", ticket(status="new")))
    claim = command(ClaimTicket, "ben")
    assigned, opened = decide(claim, view)
    assert isinstance(assigned, TicketAssigned) and assigned.event_id == handled_event_id(claim)
    assert (assigned.agent_id, assigned.slack_user_id, assigned.actor, assigned.previous_agent_id) == (
        "ben",
        "U0BEN",
        "ben",
        "ana",
    )
    assert isinstance(opened, StatusChanged) and (opened.from_status, opened.to_status) == ("new", "open")
    assert opened.assignee_id == "ben"
    assert (view.tickets["SB-1001"].assignee_id, view.tickets["SB-1001"].status) == ("ben", "open")


def test_claiming_ones_own_ticket_changes_nothing_but_opens_a_new_one():
    assert decide(command(ClaimTicket, "ana"), view_of(("SB-1001", ticket()))) == []
    [opened] = decide(command(ClaimTicket, "ana"), view_of(("SB-1001", ticket(status="new"))))
    assert isinstance(opened, StatusChanged) and opened.to_status == "open"


def test_only_the_assignee_the_team_lead_or_an_admin_hands_a_ticket_on():
    view = view_of(("SB-1001", ticket()))
    assert refusal(command(AssignTicket, "ben", to_agent="chloe"), view) == (
        "only the assignee or the team lead can hand on SB-1001"
    )
    for actor, target in (("ana", "ben"), ("lena", "chloe"), ("admin", "ana")):
        [assigned] = decide(command(AssignTicket, actor, to_agent=target), view)
        assert isinstance(assigned, TicketAssigned) and (assigned.agent_id, assigned.actor) == (target, actor)
    assert decide(command(AssignTicket, "ana", to_agent="ana"), view) == [], "already theirs"
    assert refusal(command(AssignTicket, "ana", to_agent="zed"), view) == "agent 'zed' is not configured"
    assert refusal(command(AssignTicket, "ana", to_team="nope"), view) == "team 'nope' is not configured"


def test_handing_to_a_team_queues_the_ticket_unassigned_and_anyone_may_take_it_from_there():
    view = view_of(("SB-1001", ticket()))
    [queued] = decide(command(AssignTicket, "ana", to_team="support"), view)
    assert isinstance(queued, TicketQueued) and (queued.team, queued.previous_agent_id) == ("support", "ana")
    assert view.tickets["SB-1001"].assignee_id is None
    assert decide(command(AssignTicket, "ben", to_team="support"), view) == [], "already in that queue"
    [assigned] = decide(command(AssignTicket, "ben", to_agent="chloe"), view)
    assert isinstance(assigned, TicketAssigned) and assigned.previous_agent_id is None


# --- replies and notes -----------------------------------------------------------------------------


def test_a_reply_goes_to_the_customer_opens_a_new_ticket_and_counts_as_public():
    view = view_of(("SB-1001", ticket(status="new")))
    reply, opened = decide(command(AgentReply, text="Try again"), view)
    assert isinstance(reply, MessageAdded) and (reply.reply_route, reply.internal, reply.origin) == (
        ROUTE,
        False,
        ORIGIN,
    )
    assert isinstance(opened, StatusChanged) and opened.to_status == "open"
    assert view.tickets["SB-1001"].public_replies == 1


def test_a_note_is_internal_never_delivered_and_not_a_public_reply():
    view = view_of(("SB-1001", ticket()))
    [note] = decide(command(AgentNote, "ben", text="called them"), view)
    assert isinstance(note, MessageAdded)
    assert (note.author, note.agent_id, note.internal, note.reply_route, note.origin) == (
        "agent",
        "ben",
        True,
        None,
        ORIGIN,
    )
    assert view.tickets["SB-1001"].public_replies == 0


# --- status ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_status", "to_status", "allowed"),
    [
        ("new", "pending", True),
        ("open", "on_hold", True),
        ("pending", "open", True),
        ("on_hold", "solved", True),
        ("open", "closed", False),
        ("solved", "open", True),
        ("solved", "closed", True),
        ("solved", "pending", False),
        ("closed", "open", False),
    ],
)
def test_status_transitions(from_status, to_status, allowed):
    assert allowed_transition(from_status, to_status) is allowed


def test_solving_numbers_the_resolution_and_asks_for_a_rating_only_after_a_public_reply():
    view = view_of(("SB-1001", ticket(resolutions=1)), ("SB-1002", ticket(public_replies=2, resolutions=1)))
    [silent] = decide(command(SetStatus, status="solved", reason="fixed"), view)
    assert isinstance(silent, StatusChanged) and (silent.resolution, silent.csat_route) == (2, None)
    [answered] = decide(command(SetStatus, ticket_id="SB-1002", status="solved"), view)
    assert isinstance(answered, StatusChanged) and (answered.resolution, answered.csat_route) == (2, ROUTE)
    assert view.tickets["SB-1002"].resolutions == 2
    assert decide(command(SetStatus, ticket_id="SB-1002", status="solved"), view) == [], "same status"
    assert refusal(command(SetStatus, ticket_id="SB-1002", status="pending"), view) == (
        "SB-1002 cannot go from solved to pending"
    )


def test_the_system_closes_a_solved_ticket_without_a_rating():
    view = view_of(("SB-1001", ticket(status="solved", public_replies=1, resolutions=1)))
    [closed] = decide(command(SetStatus, "system", status="closed"), view)
    assert isinstance(closed, StatusChanged) and (closed.to_status, closed.csat_route, closed.actor) == (
        "closed",
        None,
        "system",
    )


def test_an_auto_close_timed_for_an_earlier_resolution_does_not_close_a_later_one():
    # Solved (1), reopened and solved again (2) while the first auto-close was on its way.
    view = view_of(("SB-1001", ticket(status="solved", public_replies=1, resolutions=2)))
    assert refusal(command(SetStatus, "system", status="closed", resolution=1), view) == (
        "SB-1001 was solved again since resolution 1"
    )
    [closed] = decide(command(SetStatus, "system", status="closed", resolution=2), view)
    assert closed.to_status == "closed"


@pytest.mark.parametrize("status", ["pending", "on_hold", "solved"])
def test_a_customer_message_reopens_a_waiting_or_solved_ticket(status):
    view = view_of(("SB-1001", ticket(status=status, resolutions=1)))
    message = customer_message()
    decision = decide_inbound(message, view, CONFIG, NOW)
    [reopened] = [event for event in decision.events if isinstance(event, StatusChanged)]
    assert (reopened.from_status, reopened.to_status, reopened.actor, reopened.reason) == (
        status,
        "open",
        "customer",
        "the customer wrote",
    )
    assert reopened.resolution == 1


@pytest.mark.parametrize("status", ["new", "open", "closed"])
def test_a_customer_message_leaves_other_statuses_alone(status):
    view = view_of(("SB-1001", ticket(status=status)))
    events = decide_inbound(customer_message(), view, CONFIG, NOW).events
    assert not [event for event in events if isinstance(event, StatusChanged)]


def customer_message() -> InboundMessage:
    return InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id="SB-1001",
        received_at=NOW,
        channel="form",
        channel_message_id="m",
        source="contact",
        sender=Sender(email="cy@example.com"),
        text="still broken",
    )


# --- priority, tags, escalation ------------------------------------------------------------------------


def test_priority_and_tags_change_as_events_and_repeating_them_changes_nothing():
    view = view_of(("SB-1001", ticket(tags=("login",))))
    [changed] = decide(command(SetPriority, priority="urgent"), view)
    assert isinstance(changed, PriorityChanged) and (changed.from_priority, changed.to_priority) == ("normal", "urgent")
    assert decide(command(SetPriority, priority="urgent"), view) == []
    [tagged] = decide(command(TagTicket, add=["vip", "vip", "billing"], remove=["login"]), view)
    assert isinstance(tagged, TagsChanged)
    assert (tagged.added, tagged.removed, tagged.tags) == (["billing", "vip"], ["login"], ["billing", "vip"])
    assert decide(command(TagTicket, add=["vip"]), view) == []


def test_escalation_climbs_the_teams_chain_and_stops_at_its_top():
    view = view_of(("SB-1001", ticket()))
    escalated, assigned = decide(command(EscalateTicket, reason="angry"), view)
    assert isinstance(escalated, TicketEscalated) and (escalated.level, escalated.agent_id) == (1, "lena")
    assert isinstance(assigned, TicketAssigned) and (assigned.agent_id, assigned.previous_agent_id) == ("lena", "ana")
    assert refusal(command(EscalateTicket), view) == "SB-1001 is at the top of its escalation chain"


# --- merge and rate ----------------------------------------------------------------------------------------


def test_merging_closes_the_source_without_a_rating_and_notes_it_on_the_target():
    view = view_of(("SB-1001", ticket(public_replies=1)), ("SB-1002", ticket(channel="chat")))
    merged, closed, note = decide(command(MergeTicket, into_ticket_id="SB-1002"), view)
    assert isinstance(merged, TicketMerged) and merged.ticket_id == "SB-1001"
    assert isinstance(closed, StatusChanged) and (closed.to_status, closed.reason, closed.csat_route) == (
        "closed",
        "merged into SB-1002",
        None,
    )
    assert isinstance(note, MessageAdded) and note.ticket_id == "SB-1002" and note.internal
    assert note.text == "SB-1001 (Cannot log in) was merged into this ticket."
    assert view.tickets["SB-1001"].status == "closed"


@pytest.mark.parametrize(
    ("into", "reason"),
    [
        ("SB-1001", "SB-1001 cannot be merged into itself"),
        ("SB-1003", "SB-1003 is closed"),
        ("SB-1009", "there is no ticket SB-1009"),
    ],
)
def test_merging_needs_another_existing_open_ticket(into, reason):
    view = view_of(("SB-1001", ticket()), ("SB-1003", ticket(status="closed")))
    assert refusal(command(MergeTicket, into_ticket_id=into), view) == reason


def test_a_resolution_is_rated_once_and_only_if_it_happened():
    view = view_of(("SB-1001", ticket(status="solved", resolutions=1)))
    assert refusal(command(RateTicket, "customer", resolution=2, score=5), view) == "SB-1001 has no resolution 2"
    [rated] = decide(command(RateTicket, "customer", resolution=1, score=2), view)
    assert isinstance(rated, CsatRated) and rated.score == 2
    assert refusal(command(RateTicket, "customer", resolution=1, score=5), view) == (
        "resolution 1 of SB-1001 is already rated"
    )


def test_a_command_decided_twice_has_the_very_same_events():
    given_command = command(ClaimTicket, "ben")
    first = decide_command(given_command, view_of(("SB-1001", ticket(status="new"))), CONFIG, NOW).events
    again = decide_command(given_command, view_of(("SB-1001", ticket(status="new"))), CONFIG, NOW).events
    assert first == again and first[0].event_id == handled_event_id(given_command)


# --- any sequence of commands ------------------------------------------------------------------------------

ACTORS = st.sampled_from(["ana", "ben", "lena", "admin", "system", "customer", "zed"])
COMMANDS = st.one_of(
    st.builds(lambda actor: command(ClaimTicket, actor), ACTORS),
    st.builds(lambda actor, to: command(AssignTicket, actor, to_agent=to), ACTORS, st.sampled_from(["ana", "ben"])),
    st.builds(lambda actor: command(AssignTicket, actor, to_team="support"), ACTORS),
    st.builds(lambda actor: command(AgentReply, actor, text="hi"), ACTORS),
    st.builds(lambda actor: command(AgentNote, actor, text="hm"), ACTORS),
    st.builds(
        lambda actor, status: command(SetStatus, actor, status=status),
        ACTORS,
        st.sampled_from(["open", "pending", "on_hold", "solved", "closed"]),
    ),
    st.builds(lambda actor: command(EscalateTicket, actor), ACTORS),
    st.builds(lambda actor: command(MergeTicket, actor, into_ticket_id="SB-1002"), ACTORS),
    st.builds(
        lambda resolution, score: command(RateTicket, "customer", resolution=resolution, score=score),
        st.integers(1, 3),
        st.integers(1, 5),
    ),
    st.just("customer writes"),
)


@settings(max_examples=200)
@given(st.lists(COMMANDS, max_size=25))
def test_any_command_sequence_keeps_the_lifecycle_sound(commands):
    view = view_of(("SB-1001", ticket(status="new")), ("SB-1002", ticket(status="open")))
    before = view.tickets["SB-1001"]
    for given_command in commands:
        if given_command == "customer writes":
            events = decide_inbound(customer_message(), view, CONFIG, NOW).events
        else:
            events = decide_command(given_command, view, CONFIG, NOW).events
        view.absorb(events)
        after = view.tickets["SB-1001"]
        assert after.status in {*ACTIVE_STATUSES, "solved", "closed"}
        if before.status == "closed":
            assert after.status == "closed", "closed is final"
        assert after.resolutions >= before.resolutions
        assert after.csat_resolution <= after.resolutions
        for event in events:
            if isinstance(event, StatusChanged):
                assert event.from_status != event.to_status
                assert event.csat_route is None or event.to_status == "solved"
        before = after


def test_an_sla_escalation_hands_the_ticket_to_a_teams_queue_and_raises_its_priority():
    view = view_of(("SB-1001", ticket()))
    [queued] = decide(command(EscalateTicket, "system", to_team="payments", reason="resolution SLA"), view)
    assert isinstance(queued, TicketQueued)
    assert (queued.team, queued.actor, queued.previous_agent_id, queued.reason) == (
        "payments",
        "system",
        "ana",
        "resolution SLA",
    )
    [raised] = decide(command(SetPriority, "system", priority="high"), view)
    assert isinstance(raised, PriorityChanged) and raised.actor == "system"
    assert refusal(command(EscalateTicket, "system", to_team="sales"), view) == "there is no team 'sales'"
