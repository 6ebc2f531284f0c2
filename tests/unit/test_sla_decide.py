"""The SLA service's decisions (services.sla.decide) and the state rebuilt from the log (services.sla.rebuild)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.sla.deadlines import announcement
from services.sla.decide import calendars, decide, reconcile, ticket_sla_adapter
from services.sla.rebuild import TimerRebuild
from shared.config import DeskConfig, load_config
from shared.events import (
    ContactSummary,
    MessageAdded,
    PriorityChanged,
    SlaDeadlineSet,
    SlaMet,
    SlaPaused,
    SlaStopped,
    StatusChanged,
    TicketCreated,
)
from shared.settings import EXAMPLE_CONFIG

CREATED_AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def config_with_billing() -> DeskConfig:
    """The example config (support: 4 h first response) plus a billing team on a policy with every clock,
    and an urgent policy chosen by priority whatever the team."""
    data = load_config(EXAMPLE_CONFIG).model_dump()
    data["sla_policies"] = [
        {
            "id": "rush",
            "when": {"priority": ["urgent"]},
            "first_response": "15m",
            "resolution": "2h",
            "warn_at": [0.5],
        },
        *data["sla_policies"],
        {
            "id": "fast",
            "first_response": "30m",
            "next_response": "1h",
            "resolution": "8h",
            "targets": {"high": {"first_response": "20m"}},
            "pause_on": ["pending", "on_hold"],
            "warn_at": [0.5, 0.75],
        },
    ]
    data["teams"].append(
        {"id": "billing", "name": "Billing", "slack_channel": "C0BILLING", "members": ["chloe"], "sla_policy": "fast"}
    )
    return DeskConfig.model_validate(data)


CONFIG = config_with_billing()


def created(ticket_id: str = "SB-1001", team: str = "support", priority: str = "normal") -> TicketCreated:
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
        priority=priority,
    )


def message(author: str = "agent", minutes: int = 10, ticket_id: str = "SB-1001", **fields) -> MessageAdded:
    at = CREATED_AT + timedelta(minutes=minutes)
    return MessageAdded(
        event_id=uuid.uuid4(),
        occurred_at=at,
        ticket_id=ticket_id,
        message_id=uuid.uuid4(),
        author=author,
        agent_id="ana" if author == "agent" else None,
        channel="form",
        text="On it",
        received_at=at,
        **fields,
    )


def agent_reply(ticket_id: str = "SB-1001", minutes: int = 10) -> MessageAdded:
    return message("agent", minutes, ticket_id)


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


def run(events, view=None):
    """Decides the events one batch after another, as the service does; the decisions and the states."""
    states = dict(view or {})
    decisions = []
    for event in events:
        decision = decide([event], states, CONFIG)
        for ticket_id, state in decision.states.items():
            states[ticket_id] = state
        decisions.append(decision)
    return decisions, states


def kinds(decisions) -> list[tuple[str, str]]:
    return [(event.type, event.metric) for decision in decisions for event in decision.events]


# --- policies ------------------------------------------------------------------------------------


def test_the_first_policy_whose_when_matches_wins_else_the_teams_and_a_removed_team_falls_back():
    facts = {"channel": "form", "category": "general"}
    assert CONFIG.sla_policy_for(priority="normal", team="billing", **facts).id == "fast"
    assert CONFIG.sla_policy_for(priority="urgent", team="billing", **facts).id == "rush"
    assert CONFIG.sla_policy_for(priority="normal", team="sales", **facts).id == "standard"
    fast = CONFIG.sla_policy("fast")
    assert fast.target("high", "first_response") == timedelta(minutes=20)
    assert fast.target("high", "resolution") == timedelta(hours=8), "the policy's own target for the rest"
    assert CONFIG.sla_policy("standard").target("normal", "resolution") is None, "not measured"


# --- decide --------------------------------------------------------------------------------------


def test_a_new_ticket_gets_a_deadline_and_timers_per_measured_clock():
    decision = decide([created(team="billing")], {}, CONFIG)
    first, resolution = decision.events
    assert isinstance(first, SlaDeadlineSet) and first.metric == "first_response" and first.reason == "created"
    assert first.due_at == CREATED_AT + timedelta(minutes=30) and first.policy == "fast"
    assert resolution.metric == "resolution" and resolution.due_at == CREATED_AT + timedelta(hours=8)
    assert [(timer.metric, timer.kind, timer.fraction) for timers in decision.timers.values() for timer in timers] == [
        ("first_response", "warning", 0.5),
        ("first_response", "warning", 0.75),
        ("first_response", "breach", 1.0),
        ("resolution", "warning", 0.5),
        ("resolution", "warning", 0.75),
        ("resolution", "breach", 1.0),
    ]
    state = decision.states["SB-1001"]
    assert ticket_sla_adapter.validate_json(ticket_sla_adapter.dump_json(state)) == state


def test_a_ticket_created_and_answered_in_one_batch_meets_its_clock_in_order():
    reply = agent_reply()
    decision = decide([created(), reply, agent_reply(minutes=20)], {}, CONFIG)
    deadline, met = decision.events
    assert isinstance(deadline, SlaDeadlineSet) and isinstance(met, SlaMet)
    # Met against the deadline set in the same batch, at the first reply's time; the second reply changes nothing.
    assert met.due_at == deadline.due_at and met.met_at == reply.received_at
    assert decision.timers == {("SB-1001", "first_response"): []}


def test_a_redelivered_creation_decides_nothing_more():
    _, states = run([created(), agent_reply()])
    assert decide([created()], states, CONFIG).events == []


def test_an_internal_note_never_meets_a_response_clock():
    note = agent_reply().model_copy(update={"internal": True})
    decisions, _ = run([created(), note, agent_reply(minutes=30)])
    assert kinds(decisions) == [("sla.deadline_set", "first_response"), ("sla.met", "first_response")]
    assert decisions[2].events[0].met_at == CREATED_AT + timedelta(minutes=30)


def test_next_response_runs_from_the_oldest_unanswered_customer_message_to_the_next_public_reply():
    decisions, states = run(
        [
            created(team="billing"),
            message("customer", 5),  # before the first answer: covered by the first response
            agent_reply(minutes=10),
            message("customer", 20),
            message("customer", 25),
            message("agent", 40, internal=True),
            agent_reply(minutes=50),
        ]
    )
    assert kinds(decisions[1:]) == [
        ("sla.met", "first_response"),
        ("sla.deadline_set", "next_response"),
        ("sla.met", "next_response"),
    ]
    started = decisions[3].events[0]
    assert started.due_at == CREATED_AT + timedelta(minutes=80) and started.reason == "customer wrote"
    assert decisions[6].events[0].met_at == CREATED_AT + timedelta(minutes=50)


def test_pending_pauses_resolution_and_the_customers_reply_resumes_it_with_the_time_used_kept():
    decisions, states = run(
        [
            created(team="billing"),
            agent_reply(minutes=10),
            status_changed("SB-1001", "pending", minutes=60),
            status_changed("SB-1001", "open", minutes=180),
        ]
    )
    paused = decisions[2].events[0]
    assert isinstance(paused, SlaPaused) and paused.metric == "resolution" and paused.used_seconds == 3600
    assert decisions[2].timers == {("SB-1001", "resolution"): [], ("SB-1001", "auto_close"): []}
    resumed = decisions[3].events[0]
    assert (resumed.metric, resumed.reason) == ("resolution", "status open")
    assert resumed.due_at == CREATED_AT + timedelta(minutes=180) + timedelta(hours=7)
    assert resumed.used_seconds == 3600


def test_solving_meets_resolution_stops_what_waits_for_an_answer_and_closing_forgets_the_ticket():
    decisions, states = run(
        [
            created(team="billing"),
            status_changed("SB-1001", "solved", minutes=30),
            status_changed("SB-1001", "closed", minutes=60),
        ]
    )
    assert kinds(decisions[1:]) == [("sla.stopped", "first_response"), ("sla.met", "resolution")]
    assert isinstance(decisions[1].events[0], SlaStopped)
    assert decisions[2].states == {"SB-1001": None}


def test_a_priority_change_recomputes_from_the_original_start_with_a_reason():
    decisions, _ = run(
        [
            created(team="billing"),
            PriorityChanged(
                event_id=uuid.uuid4(),
                occurred_at=CREATED_AT + timedelta(minutes=5),
                ticket_id="SB-1001",
                from_priority="normal",
                to_priority="urgent",
                actor="ana",
            ),
        ]
    )
    first, resolution = decisions[1].events
    assert (first.metric, first.policy, first.reason) == ("first_response", "rush", "priority changed to urgent")
    assert first.due_at == CREATED_AT + timedelta(minutes=15)
    assert resolution.due_at == CREATED_AT + timedelta(hours=2)


def test_events_of_a_ticket_the_service_never_saw_created_are_left_alone():
    assert decide([agent_reply("SB-2000"), status_changed("SB-2000", "solved")], {}, CONFIG).events == []


# --- state rebuilt from the log ------------------------------------------------------------------


def rebuilt(events) -> TimerRebuild:
    rebuild = TimerRebuild(CONFIG)
    for event in events:
        rebuild.observe(event)
    return rebuild


def pending_of(events) -> list[tuple[str, str, str, float]]:
    return sorted((t.ticket_id, t.metric, t.kind, t.fraction) for t in rebuilt(events).pending())


def test_rebuilt_timers_are_all_of_the_running_clocks_and_the_states_those_the_live_service_holds():
    log = [created("SB-1001", "billing"), agent_reply("SB-1001"), created("SB-1002")]
    assert pending_of(log) == [
        ("SB-1001", "resolution", "breach", 1.0),
        ("SB-1001", "resolution", "warning", 0.5),
        ("SB-1001", "resolution", "warning", 0.75),
        ("SB-1002", "first_response", "breach", 1.0),
        ("SB-1002", "first_response", "warning", 0.75),
    ]
    assert rebuilt(log).open_states() == run(log)[1]


def test_rebuilt_timers_leave_out_the_warnings_and_breaches_that_fired():
    log = [created("SB-1001")]
    [warning, breach] = decide(log, {}, CONFIG).timers["SB-1001", "first_response"]
    fired = [announcement(warning, CREATED_AT + timedelta(hours=3))]
    assert pending_of([*log, *fired]) == [("SB-1001", "first_response", "breach", 1.0)]
    # A breach announced is recorded on the clock too: a recomputed deadline schedules no second breach.
    log += [announcement(breach, CREATED_AT + timedelta(hours=4))]
    assert rebuilt(log).open_states()["SB-1001"].clocks.get("first_response").breached


def test_a_met_clock_rebuilds_no_timers_and_a_solved_ticket_only_its_auto_close():
    assert pending_of([created("SB-1001"), agent_reply("SB-1001")]) == []
    assert pending_of([created("SB-1001"), status_changed("SB-1001", "solved")]) == [
        ("SB-1001", "auto_close", "close", 1.0)
    ]


# --- a changed config ------------------------------------------------------------------------------


def test_a_changed_config_moves_the_deadlines_it_changes_and_only_those():
    log = [created("SB-1001", "billing"), agent_reply("SB-1001"), created("SB-1002")]
    states = rebuilt(log).open_states()
    announced = {
        (ticket_id, metric): clock.due_at(calendars(CONFIG.sla_policy(state.policy), CONFIG)[metric])
        for ticket_id, state in states.items()
        for metric, clock in state.clocks.clocks.items()
        if clock.running
    }
    assert reconcile(states, announced, CONFIG, CREATED_AT).events == []

    data = CONFIG.model_dump()
    fast = next(policy for policy in data["sla_policies"] if policy["id"] == "fast")
    fast["resolution"] = "4h"
    standard = next(policy for policy in data["sla_policies"] if policy["id"] == "standard")
    standard["first_response"], standard["resolution"] = None, "1d"
    changed = DeskConfig.model_validate(data)
    decision = reconcile(states, announced, changed, CREATED_AT + timedelta(minutes=30))
    moved = {(event.ticket_id, event.type, event.metric): event for event in decision.events}
    assert set(moved) == {
        ("SB-1001", "sla.deadline_set", "resolution"),
        ("SB-1002", "sla.stopped", "first_response"),
    }
    resolution = moved["SB-1001", "sla.deadline_set", "resolution"]
    assert resolution.due_at == CREATED_AT + timedelta(hours=4) and resolution.reason == "config changed"
    assert decision.timers["SB-1002", "first_response"] == []
    # Counted from the original start: a clock the new policy adds is not started after the fact.
    assert decision.states["SB-1002"].clocks.get("resolution") is None
    again = reconcile(states, announced, changed, CREATED_AT + timedelta(minutes=31))
    assert [event.event_id for event in again.events] == [event.event_id for event in decision.events]
