"""SLA escalation chains (services.sla.escalation): when levels fire, once per clock, and what they do."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.notifier.plan import NotifierView, TicketContext, plan
from services.sla.clocks import Clock
from services.sla.decide import decide
from services.sla.escalation import escalation_timers, fire
from services.sla.handler import fired_by
from shared.calendars import always_open
from shared.config import DeskConfig, load_config
from shared.events import EscalateTicket, SetPriority
from shared.settings import EXAMPLE_CONFIG
from tests.unit.test_sla_decide import CREATED_AT, created

MINUTE = timedelta(minutes=1)
WALL_CLOCK = always_open()


def escalating_config() -> DeskConfig:
    data = load_config(EXAMPLE_CONFIG).model_dump()
    data["sla_policies"] = [
        {
            "id": "standard",
            "first_response": "1h",
            "resolution": "4h",
            "warn_at": [0.5],
            "escalation": [
                {"at": "warning", "notify": ["assignee"]},
                {"at": "breach", "notify": ["lead", "C0ESCALATE"], "raise_priority": True},
                {"at": "30m", "reassign": "lead", "metrics": ["resolution"]},
            ],
        }
    ]
    return DeskConfig.model_validate(data)


CONFIG = escalating_config()
POLICY = CONFIG.sla_policy("standard")
COMMON = {"ticket_id": "SB-1001", "metric": "resolution", "due_at": "", "correlation_id": None}


def levels(timers) -> list[tuple[int, float]]:
    return [(timer.level, (timer.fires_at - CREATED_AT.timestamp()) / 60) for timer in timers]


def test_levels_fire_at_the_first_warning_at_the_breach_and_a_business_time_after_it():
    clock = Clock.start("resolution", timedelta(hours=4), CREATED_AT)
    warnings = [instant for _, instant in clock.warnings(POLICY.warn_at, WALL_CLOCK)]
    timers = escalation_timers(clock, "resolution", POLICY, WALL_CLOCK, warnings, COMMON)
    assert levels(timers) == [(1, 120), (2, 240), (3, 270)]
    # A level for other clocks only is left out; one that fired for this clock is not scheduled again.
    first = Clock.start("first_response", timedelta(hours=1), CREATED_AT)
    assert levels(escalation_timers(first, "first_response", POLICY, WALL_CLOCK, [], COMMON)) == [(2, 60)]
    fired = replace(Clock.start("resolution", timedelta(hours=4), CREATED_AT), escalated=(1, 2))
    assert levels(escalation_timers(fired, "resolution", POLICY, WALL_CLOCK, warnings, COMMON)) == [(3, 270)]


def test_a_new_ticket_schedules_its_escalations_with_the_clocks_timers_and_a_fired_level_is_remembered():
    decision = decide([created()], {}, CONFIG)
    kinds = [(t.metric, t.kind, t.level) for timers in decision.timers.values() for t in timers]
    assert ("resolution", "escalation", 3) in kinds and ("first_response", "escalation", 3) not in kinds
    [escalation] = [t for t in decision.timers["SB-1001", "first_response"] if t.kind == "escalation" and t.level == 1]
    event, _ = fire(escalation, {"team": "support", "assignee_id": "ana", "priority": "normal"}, CONFIG, CREATED_AT)
    state = decide([event], decision.states, CONFIG).states["SB-1001"]
    assert state.clocks.get("first_response").escalated == (1,)


def test_firing_tells_whom_the_level_names_and_asks_the_router_to_act():
    [_, breach, after] = [
        t for t in decide([created()], {}, CONFIG).timers["SB-1001", "resolution"] if t.kind == "escalation"
    ]
    ticket = {"team": "support", "assignee_id": "ana", "priority": "high"}
    event, commands = fire(breach, ticket, CONFIG, CREATED_AT + timedelta(hours=4))
    lead = CONFIG.agent(CONFIG.team("support").lead).slack_user_id
    assert (event.level, event.trigger, event.notify_users, event.notify_channels) == (
        2,
        "at the breach",
        [lead],
        ["C0ESCALATE"],
    )
    [raised] = commands
    assert isinstance(raised, SetPriority) and (raised.priority, raised.agent_id) == ("urgent", "system")
    event, commands = fire(after, ticket, CONFIG, CREATED_AT + timedelta(hours=5))
    assert event.trigger == "30 minutes after the breach" and event.reassigned_to == "lead"
    assert [type(command) for command in commands] == [EscalateTicket]
    # The same timer firing twice (a lease run out) asks the same things under the same IDs.
    again, repeated = fire(after, ticket, CONFIG, CREATED_AT + timedelta(hours=6))
    assert again.event_id == event.event_id and [c.event_id for c in repeated] == [c.event_id for c in commands]


def test_a_met_or_paused_clock_escalates_nothing_and_a_removed_level_neither():
    timer = next(t for t in decide([created()], {}, CONFIG).timers["SB-1001", "resolution"] if t.kind == "escalation")
    fields = {"resolution_sla": "paused", "team": "support", "assignee_id": "ana", "priority": "normal"}
    assert fired_by(timer, fields, CONFIG, CREATED_AT) == ([], [])
    shorter = load_config(EXAMPLE_CONFIG)
    assert fire(timer, fields, shorter, CREATED_AT) == (None, [])


def test_the_escalation_is_posted_in_the_tickets_thread_and_in_the_channels_it_names():
    timer = [t for t in decide([created()], {}, CONFIG).timers["SB-1001", "resolution"] if t.kind == "escalation"][1]
    event, _ = fire(timer, {"team": "support", "assignee_id": "ana", "priority": "normal"}, CONFIG, CREATED_AT)
    view = NotifierView(tickets={"SB-1001": TicketContext(team="support")})
    thread, channel = plan(event, view, CONFIG)
    assert thread.in_thread and channel.target == "slack:C0ESCALATE" and not channel.in_thread
    assert "escalation level 2" in thread.text and "priority raised to high" in thread.text
    assert f"<@{event.notify_users[0]}>" in thread.text


def test_a_level_can_hand_the_ticket_back_to_its_queue_or_to_another_team():
    data = CONFIG.model_dump()
    data["sla_policies"][0]["escalation"] = [
        {"at": "breach", "reassign": "queue"},
        {"at": "1h", "reassign": "payments"},
    ]
    config = DeskConfig.model_validate(data)
    queue, payments = [
        t for t in decide([created()], {}, config).timers["SB-1001", "resolution"] if t.kind == "escalation"
    ]
    ticket = {"team": "support", "assignee_id": "ana", "priority": "normal"}
    [back] = fire(queue, ticket, config, CREATED_AT)[1]
    [onwards] = fire(payments, ticket, config, CREATED_AT)[1]
    assert isinstance(back, EscalateTicket) and (back.to_team, onwards.to_team) == ("support", "payments")
    data["sla_policies"][0]["escalation"] = [{"at": "breach", "reassign": "sales"}]
    with pytest.raises(ValueError, match="reassign: 'sales' is not lead, queue or a team"):
        DeskConfig.model_validate(data)
