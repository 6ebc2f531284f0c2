"""The SLA service's decisions (services.sla.decide) and the timers rebuilt from the log (services.sla.rebuild)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.sla.deadlines import announcement, first_response_deadline, timers_for
from services.sla.decide import ClockView, FirstResponseClock, decide, policy_for
from services.sla.rebuild import TimerRebuild
from shared.config import DeskConfig, load_config
from shared.events import ContactSummary, MessageAdded, SlaDeadlineSet, SlaMet, StatusChanged, TicketCreated
from shared.settings import EXAMPLE_CONFIG

CREATED_AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def config_with_billing() -> DeskConfig:
    """The example config (support: 4 h) plus a billing team on a 30 min policy warning twice."""
    data = load_config(EXAMPLE_CONFIG).model_dump()
    data["sla_policies"].append({"id": "fast", "first_response": "30m", "warn_at": [0.5, 0.75]})
    data["teams"].append(
        {"id": "billing", "name": "Billing", "slack_channel": "C0BILLING", "members": ["chloe"], "sla_policy": "fast"}
    )
    return DeskConfig.model_validate(data)


CONFIG = config_with_billing()


def created(ticket_id: str = "SB-1001", team: str = "support") -> TicketCreated:
    return TicketCreated(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, ticket_id),
        occurred_at=CREATED_AT,
        ticket_id=ticket_id,
        correlation_id=f"opening-{ticket_id}",
        channel="form",
        subject="Cannot log in",
        contact=ContactSummary(contact_id="c_1"),
        team=team,
        category="general",
        priority="normal",
    )


def agent_reply(ticket_id: str = "SB-1001", minutes: int = 10) -> MessageAdded:
    at = CREATED_AT + timedelta(minutes=minutes)
    return MessageAdded(
        event_id=uuid.uuid4(),
        occurred_at=at,
        ticket_id=ticket_id,
        message_id=uuid.uuid4(),
        author="agent",
        agent_id="ana",
        channel="form",
        text="On it",
        received_at=at,
    )


# --- policies ------------------------------------------------------------------------------------


def test_each_team_has_its_policy_and_a_removed_team_falls_back_to_the_default_teams():
    assert policy_for("billing", CONFIG).id == "fast"
    assert policy_for("support", CONFIG).id == "standard"
    assert policy_for("sales", CONFIG).id == "standard"

    [deadline] = decide([created(team="sales")], ClockView(), CONFIG).events
    assert deadline.policy == "standard" and deadline.due_at == CREATED_AT + timedelta(hours=4)


# --- decide --------------------------------------------------------------------------------------


def test_a_new_ticket_gets_its_deadline_and_timers():
    view = ClockView()
    decision = decide([created(team="billing")], view, CONFIG)

    [deadline] = decision.events
    assert isinstance(deadline, SlaDeadlineSet)
    assert deadline.due_at == CREATED_AT + timedelta(minutes=30)
    assert [(timer.kind, timer.fraction) for timer in decision.schedule] == [
        ("warning", 0.5),
        ("warning", 0.75),
        ("breach", 1.0),
    ]
    assert decision.cancel == []
    assert view.first_response["SB-1001"] == FirstResponseClock("running", deadline.due_at)


def test_a_ticket_created_and_answered_in_one_batch_meets_its_clock_in_order():
    view = ClockView()
    reply = agent_reply()

    decision = decide([created(), reply, agent_reply(minutes=20)], view, CONFIG)

    deadline, met = decision.events
    assert isinstance(deadline, SlaDeadlineSet) and isinstance(met, SlaMet)
    # Met against the deadline set in the same batch, at the first reply's time; the second reply changes nothing.
    assert met.due_at == deadline.due_at and met.met_at == reply.received_at
    # The timers are written and cancelled in the same batch, in this order.
    assert decision.schedule == timers_for(deadline)
    assert decision.cancel == [("SB-1001", "first_response")]
    assert view.first_response["SB-1001"].status == "met"


def test_a_creation_redelivered_after_the_clock_was_met_schedules_no_timers():
    deadline = first_response_deadline(created(), CONFIG.sla_policy("standard"))
    view = ClockView({"SB-1001": FirstResponseClock("met", deadline.due_at)})

    decision = decide([created()], view, CONFIG)

    # The same deadline event again (same ID: consumers deduplicate it), but no timer to announce it.
    assert [event.event_id for event in decision.events] == [deadline.event_id]
    assert decision.schedule == [] and decision.cancel == []
    assert view.first_response["SB-1001"].status == "met"


def test_an_agent_reply_on_a_met_clock_changes_nothing_and_one_without_a_clock_meets_it_without_a_due_time():
    met_view = ClockView({"SB-1001": FirstResponseClock("met", CREATED_AT)})
    assert decide([agent_reply()], met_view, CONFIG).events == []

    decision = decide([agent_reply("SB-1002")], ClockView(), CONFIG)
    [met] = decision.events
    assert isinstance(met, SlaMet) and met.due_at is None
    assert decision.cancel == [("SB-1002", "first_response")]


def test_customer_messages_and_internal_notes_do_not_touch_the_clock():
    customer = agent_reply().model_copy(update={"author": "customer", "agent_id": None})
    note = agent_reply().model_copy(update={"internal": True, "reply_route": None})
    view = ClockView()
    assert decide([customer, note], view, CONFIG).events == [] and view.first_response == {}


# --- timers rebuilt from the log -----------------------------------------------------------------


def deadline_of(ticket_id: str) -> SlaDeadlineSet:
    return first_response_deadline(created(ticket_id, "billing"), CONFIG.sla_policy("fast"))


def pending_of(events) -> list[tuple[str, str, float]]:
    rebuild = TimerRebuild(CONFIG.close_after)
    for event in events:
        rebuild.observe(event)
    return [(timer.ticket_id, timer.kind, timer.fraction) for timer in rebuild.pending()]


def test_rebuilt_timers_are_all_of_a_running_clock():
    assert pending_of([deadline_of("SB-1001")]) == [
        ("SB-1001", "warning", 0.5),
        ("SB-1001", "warning", 0.75),
        ("SB-1001", "breach", 1.0),
    ]


def test_rebuilt_timers_leave_out_the_warnings_and_breaches_that_fired():
    running, breached = deadline_of("SB-1001"), deadline_of("SB-1002")
    half = timers_for(running)[0]
    fired = [announcement(half, CREATED_AT + timedelta(minutes=15))]
    fired += [announcement(timer, CREATED_AT + timedelta(minutes=31)) for timer in timers_for(breached)]

    pending = pending_of([running, breached, *fired])

    # Only the warning of the other fraction, and the breach, are still to come.
    assert pending == [("SB-1001", "warning", 0.75), ("SB-1001", "breach", 1.0)]


def test_a_met_clock_rebuilds_no_timers_whatever_came_before():
    met = SlaMet(
        event_id=uuid.uuid4(),
        occurred_at=CREATED_AT,
        ticket_id="SB-1001",
        metric="first_response",
        due_at=CREATED_AT,
        met_at=CREATED_AT,
    )
    assert pending_of([deadline_of("SB-1001"), met, deadline_of("SB-1002")]) == [
        ("SB-1002", "warning", 0.5),
        ("SB-1002", "warning", 0.75),
        ("SB-1002", "breach", 1.0),
    ]
    # The order of the log does not matter: a met clock stays met.
    assert pending_of([met, deadline_of("SB-1001")]) == []


def test_an_internal_note_never_meets_the_first_response_clock():
    view = ClockView()
    note = agent_reply().model_copy(update={"internal": True})

    decision = decide([created(), note], view, CONFIG)

    assert [type(event) for event in decision.events] == [SlaDeadlineSet]
    assert decision.cancel == [] and view.first_response["SB-1001"].status == "running"
    # The public reply after it does, at its own time.
    reply = agent_reply(minutes=30)
    [met] = decide([reply], view, CONFIG).events
    assert isinstance(met, SlaMet) and met.met_at == reply.received_at


def status_changed(ticket_id: str, to_status: str, minutes: int = 12) -> StatusChanged:
    return StatusChanged(
        event_id=uuid.uuid4(),
        occurred_at=CREATED_AT + timedelta(minutes=minutes),
        ticket_id=ticket_id,
        from_status="new",
        to_status=to_status,
        actor="ana",
        team="support",
        resolution=1 if to_status == "solved" else 0,
    )


def test_a_ticket_solved_or_merged_away_unanswered_stops_its_first_response_clock():
    view = ClockView()
    decision = decide([created(), status_changed("SB-1001", "solved")], view, CONFIG)
    assert decision.cancel == [("SB-1001", "first_response")]
    assert view.first_response["SB-1001"].status == "stopped"
    # A redelivered creation does not start it again.
    assert decide([created()], view, CONFIG).schedule == []

    merged = decide([status_changed("SB-1002", "closed")], ClockView(), CONFIG)
    assert merged.cancel == [("SB-1002", "first_response")]


def test_a_pending_ticket_keeps_its_clock_and_a_solved_one_rebuilds_no_first_response_timers():
    assert decide([created(), status_changed("SB-1001", "pending")], ClockView(), CONFIG).cancel == []
    pending = pending_of([deadline_of("SB-1001"), status_changed("SB-1001", "solved")])
    assert [entry for entry in pending if entry[1] != "close"] == []
