"""Assignment and team queues in pure code (services.router.assignment, services.router.queues)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.router.assignment import (
    Desk,
    Need,
    QueuedTicket,
    choose,
    ineligibility,
    off_shift_throughout,
    on_shift,
    queue_order,
)
from services.router.decide import KnownTicket, RouterView, decide_command, decide_inbound
from services.router.queues import AgentWork, plan, system_assign
from shared.config import DeskConfig
from shared.events import AssignTicket, ClaimTicket, InboundMessage, Sender, SetStatus, TicketAssigned, TicketQueued

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
AGENTS = ("ana", "ben", "chloe")


def desk_config(routing: str = "round_robin", capacity: int = 2, **team) -> DeskConfig:
    return DeskConfig.model_validate(
        {
            "teams": [
                {
                    "id": "support",
                    "name": "Support",
                    "slack_channel": "C0SUPPORT",
                    "members": list(AGENTS),
                    "routing": routing,
                    "sla_policy": "standard",
                    **team,
                }
            ],
            "agents": [
                {"id": "ana", "name": "Ana", "slack_user_id": "U0ANA", "skills": ["billing", "login"],
                 "languages": ["en", "es"], "capacity": capacity},
                {"id": "ben", "name": "Ben", "slack_user_id": "U0BEN", "skills": ["login"], "capacity": capacity},
                {"id": "chloe", "name": "Chloe", "slack_user_id": "U0CHLOE", "skills": ["billing"],
                 "languages": ["en", "fr"], "capacity": capacity},
            ],
            "default_classification": {"team": "support"},
            "sla_policies": [{"id": "standard", "first_response": "4h"}],
        }
    )  # fmt: skip


CONFIG = desk_config()


def test_each_ineligible_member_is_passed_over_with_the_reason():
    desk = Desk(loads={"ana": 2}, away={"ben"})
    choice = choose(Need("support", ("billing",), "fr"), desk, CONFIG)
    assert choice.agent_id == "chloe" and choice.eligible == ("chloe",)
    assert choice.passed_over == {"ana": "at capacity (2/2)", "ben": "away"}
    # Nobody: the reasons say why the ticket waits.
    nobody = choose(Need("support", ("billing",)), Desk(loads={"ana": 2, "chloe": 2}), CONFIG)
    assert nobody.agent_id is None
    assert nobody.queued_reason == "no member is eligible: at capacity (2/2); lacks skill billing"


def test_skills_are_required_until_relaxed_and_language_only_when_a_member_speaks_it():
    assert ineligibility("ben", Need("support", ("billing",)), Desk(), CONFIG) == "lacks skill billing"
    assert ineligibility("ben", Need("support", ("billing",), relax_skills=True), Desk(), CONFIG) is None
    assert ineligibility("ben", Need("support", language="es"), Desk(), CONFIG) == "does not speak es"
    # Nobody in the team speaks German: language does not narrow the choice.
    assert ineligibility("ben", Need("support", language="de"), Desk(), CONFIG) is None
    assert ineligibility("ana", Need("support"), Desk(on_shift={"ben"}), CONFIG) == "off shift"


def test_round_robin_goes_in_turn_passing_by_whoever_is_not_eligible():
    chosen = [choose(Need("support"), Desk(turns={"support": turn}), CONFIG).agent_id for turn in range(4)]
    assert chosen == ["ana", "ben", "chloe", "ana"]
    assert choose(Need("support"), Desk(turns={"support": 1}, away={"ben"}), CONFIG).agent_id == "chloe"


def test_least_loaded_takes_the_lowest_share_of_capacity_ties_to_whoever_waited_longest():
    config = desk_config("least_loaded")
    desk = Desk(loads={"ana": 1, "ben": 0, "chloe": 0}, last_assigned={"ben": 200.0, "chloe": 100.0})
    choice = choose(Need("support"), desk, config)
    assert choice.agent_id == "chloe"
    assert choice.passed_over["ben"] == "eligible; same load, chloe waited longer since their last ticket"
    assert choice.passed_over["ana"] == "eligible; load 1/2, chloe has 0/2"


def test_skills_routing_prefers_the_best_match_then_the_least_loaded():
    config = desk_config("skills")
    need = Need("support", ("billing", "login"), relax_skills=True)
    assert choose(need, Desk(loads={"ana": 1}), config).agent_id == "ana"
    assert choose(Need("support", ("billing",)), Desk(loads={"ana": 1}), config).agent_id == "chloe"


def test_the_preferred_assignee_gets_the_ticket_whenever_eligible():
    config = desk_config("least_loaded")
    assert choose(Need("support", preferred="ana"), Desk(loads={"ana": 1}), config).agent_id == "ana"
    assert choose(Need("support", preferred="ana"), Desk(away={"ana"}), config).agent_id == "ben"


def queued(ticket_id: str, priority: str = "normal", age: int = 0, due: int | None = None, **fields) -> QueuedTicket:
    created = NOW - timedelta(minutes=age)
    due_at = NOW + timedelta(minutes=due) if due is not None else None
    return QueuedTicket(ticket_id, "support", priority, created, created, due_at, **fields)


def test_queues_are_served_by_priority_then_sla_due_then_age():
    tickets = [
        queued("SB-1", "low", age=60),
        queued("SB-2", "normal", age=5),
        queued("SB-3", "normal", age=30),
        queued("SB-4", "normal", age=1, due=10),
        queued("SB-5", "urgent"),
        queued("SB-6", "normal", age=1, due=5),
    ]
    assert [ticket.ticket_id for ticket in queue_order(tickets)] == ["SB-5", "SB-6", "SB-4", "SB-3", "SB-2", "SB-1"]


def test_the_plan_serves_the_queue_in_order_until_capacity_is_used_up():
    queue = [queued(f"SB-{n}", "high" if n == 9 else "normal", age=n) for n in range(1, 10)]
    commands = plan({"support": queue}, {}, Desk(loads={"ana": 2, "ben": 1}), CONFIG, NOW)
    assert [(command.ticket_id, command.to_agent) for command in commands] == [
        ("SB-9", "ben"),
        ("SB-8", "chloe"),
        ("SB-7", "chloe"),
    ]
    assert all(command.agent_id == "system" for command in commands)
    # Router instances sweeping at once ask for the same thing under the same ID.
    again = plan({"support": queue}, {}, Desk(loads={"ana": 2, "ben": 1}), CONFIG, NOW + timedelta(seconds=1))
    assert [command.event_id for command in again] == [command.event_id for command in commands]


def test_a_ticket_needing_a_skill_nobody_free_has_waits_until_the_skills_timeout():
    config = desk_config(skills_timeout="10m")
    ticket = queued("SB-1", skills=("billing",))
    desk = Desk(loads={"ana": 2, "chloe": 2})
    assert plan({"support": [ticket]}, {}, desk, config, NOW) == []
    [command] = plan({"support": [ticket]}, {}, desk, config, NOW + timedelta(minutes=10))
    assert command.to_agent == "ben"


def test_tickets_of_an_agent_away_past_the_grace_go_back_to_their_teams_queue():
    away = {
        "ana": AgentWork(NOW - timedelta(minutes=11), {"SB-1": "support"}),
        "ben": AgentWork(None, {"SB-2": "support"}),
    }
    [command] = plan({}, away, Desk(away={"ana"}), CONFIG, NOW)
    assert (command.ticket_id, command.to_team, command.agent_id) == ("SB-1", "support", "system")
    assert plan({}, away, Desk(away={"ana"}), CONFIG, NOW - timedelta(minutes=2)) == []


def with_shifts() -> DeskConfig:
    """Ana works 09:00-17:00 Berlin time on weekdays; the others have no calendar (always at work)."""
    data = CONFIG.model_dump()
    data["calendars"] = [
        {"id": "berlin", "timezone": "Europe/Berlin", "hours": {day: ["09:00-17:00"] for day in WEEKDAYS}}
    ]
    data["agents"][0]["calendar"] = "berlin"
    return DeskConfig.model_validate(data)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def test_working_hours_decide_who_is_on_shift_and_whose_shift_ended_past_the_grace():
    shifts = with_shifts()
    tuesday_noon = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)  # 12:00 in Berlin
    evening = datetime(2026, 12, 1, 16, 5, tzinfo=UTC)  # 17:05: five minutes after Ana's shift
    assert on_shift(shifts, tuesday_noon) == {"ana", "ben", "chloe"}
    assert on_shift(shifts, evening) == {"ben", "chloe"}
    assert off_shift_throughout(shifts, evening, timedelta(minutes=10)) == set()
    assert off_shift_throughout(shifts, evening + timedelta(minutes=5), timedelta(minutes=10)) == {"ana"}
    choice = choose(Need("support", ("billing",)), Desk(on_shift=on_shift(shifts, evening)), shifts)
    assert choice.agent_id == "chloe" and choice.passed_over["ana"] == "off shift"


def test_tickets_of_an_agent_whose_shift_ended_past_the_grace_go_back_to_the_queue():
    shifts = with_shifts()
    late = datetime(2026, 12, 1, 16, 30, tzinfo=UTC)
    work = {"ana": AgentWork(None, {"SB-1": "support"}, off_shift=True)}
    [command] = plan({}, work, Desk(on_shift={"ben", "chloe"}), shifts, late)
    assert (command.ticket_id, command.to_team) == ("SB-1", "support")
    # One command a day: every sweep of the evening asks under the same ID.
    [again] = plan({}, work, Desk(on_shift={"ben", "chloe"}), shifts, late + timedelta(hours=1))
    assert again.event_id == command.event_id
    [back] = system_assign(command, known("open", "ana"), Desk(on_shift={"ben", "chloe"}), shifts, late)
    assert back.reason == "ana's shift is over" and back.preferred_agent_id == "ana"
    # Back at work (or at work still): the ticket stays hers.
    assert system_assign(command, known("open", "ana"), Desk(on_shift={"ana", "ben"}), shifts, late) == []


def known(status: str = "new", assignee: str | None = None) -> KnownTicket:
    return KnownTicket("c1", "email", None, status=status, team="support", assignee_id=assignee)


def system(ticket_id: str = "SB-1", **target) -> AssignTicket:
    return AssignTicket(event_id=uuid.uuid4(), occurred_at=NOW, ticket_id=ticket_id, agent_id="system", **target)


def test_the_router_grants_the_dispatchers_command_only_while_it_still_holds():
    [assigned] = system_assign(system(to_agent="ben"), known(), Desk(), CONFIG, NOW)
    assert isinstance(assigned, TicketAssigned) and assigned.actor == "system" and not assigned.over_capacity
    assert system_assign(system(to_agent="ben"), known(), Desk(loads={"ben": 2}), CONFIG, NOW) == []
    assert system_assign(system(to_agent="ben"), known(assignee="ana"), Desk(), CONFIG, NOW) == []
    assert system_assign(system(to_agent="ben"), known("pending"), Desk(), CONFIG, NOW) == []
    [back] = system_assign(system(to_team="support"), known("open", "ana"), Desk(away={"ana"}), CONFIG, NOW)
    assert isinstance(back, TicketQueued) and back.preferred_agent_id == back.previous_agent_id == "ana"
    assert back.reason == "ana is away"
    # Back already: the tickets stay theirs.
    assert system_assign(system(to_team="support"), known("open", "ana"), Desk(), CONFIG, NOW) == []


def test_an_agent_claiming_beyond_their_capacity_is_allowed_and_flagged():
    view = RouterView(tickets={"SB-1": known()}, working={"ana": 2})
    claim = ClaimTicket(event_id=uuid.uuid4(), occurred_at=NOW, ticket_id="SB-1", agent_id="ana")
    assigned = [event for event in decide_command(claim, view, CONFIG, NOW).events if isinstance(event, TicketAssigned)]
    assert [event.over_capacity for event in assigned] == [True]
    view = RouterView(tickets={"SB-1": known()}, working={"ana": 1})
    assigned = [event for event in decide_command(claim, view, CONFIG, NOW).events if isinstance(event, TicketAssigned)]
    assert [event.over_capacity for event in assigned] == [False]


# --- properties ------------------------------------------------------------------------------------

loads = st.dictionaries(st.sampled_from(AGENTS), st.integers(0, 4))
needs = st.builds(
    Need,
    team=st.just("support"),
    skills=st.lists(st.sampled_from(["billing", "login"]), max_size=2, unique=True).map(tuple),
    language=st.sampled_from([None, "en", "es", "fr", "de"]),
    relax_skills=st.booleans(),
    preferred=st.sampled_from([None, *AGENTS]),
)


@given(
    routing=st.sampled_from(["round_robin", "least_loaded", "skills"]),
    need=needs,
    loads=loads,
    away=st.sets(st.sampled_from(AGENTS)),
    turn=st.integers(0, 100),
)
def test_the_chosen_agent_is_eligible_and_under_capacity_and_every_other_member_has_a_reason(
    routing, need, loads, away, turn
):
    config = desk_config(routing)
    desk = Desk(loads=loads, away=away, turns={"support": turn})
    choice = choose(need, desk, config)
    eligible = [agent for agent in AGENTS if ineligibility(agent, need, desk, config) is None]
    assert sorted(choice.eligible) == sorted(eligible)
    if choice.agent_id is None:
        assert not eligible
    else:
        assert choice.agent_id in eligible and loads.get(choice.agent_id, 0) < 2
    assert set(choice.passed_over) == set(AGENTS) - {choice.agent_id}


@given(routing=st.sampled_from(["round_robin", "least_loaded"]), rounds=st.integers(1, 10))
def test_with_everyone_eligible_tickets_are_shared_evenly(routing, rounds):
    config = desk_config(routing, capacity=100)
    queue = [queued(f"SB-{n}", age=n) for n in range(3 * rounds)]
    commands = plan({"support": queue}, {}, Desk(), config, NOW)
    assert Counter(command.to_agent for command in commands) == {agent: rounds for agent in AGENTS}


@given(
    routing=st.sampled_from(["round_robin", "least_loaded", "skills"]),
    loads=loads,
    away=st.sets(st.sampled_from(AGENTS)),
    tickets=st.lists(needs, max_size=12),
)
def test_a_plan_never_puts_an_agent_over_capacity_nor_gives_an_away_agent_a_ticket(routing, loads, away, tickets):
    config = desk_config(routing)
    queue = [
        queued(f"SB-{n}", skills=need.skills, language=need.language, preferred=need.preferred)
        for n, need in enumerate(tickets)
    ]
    commands = plan({"support": queue}, {}, Desk(loads=loads, away=away), config, NOW)
    given_to = Counter(command.to_agent for command in commands)
    assert not set(given_to) & away
    assert all(loads.get(agent, 0) + count <= 2 for agent, count in given_to.items())
    assert len({command.ticket_id for command in commands}) == len(commands)


def test_a_batch_sees_the_capacity_its_own_earlier_records_freed_or_used():
    """The view follows each agent's load record by record, as the handler absorbs the decisions."""
    config = desk_config("least_loaded", capacity=1)
    view = RouterView(
        tickets={"SB-1": known("open", "ana"), "SB-2": known("open", "ben"), "SB-3": known("open", "chloe")},
        working={"ana": 1, "ben": 1, "chloe": 1},
    )
    first = decide_inbound(message("SB-4"), view, config, NOW)
    view.absorb(first.events)
    assert "ticket.queued" in types(first) and view.capacity_checked == set()
    solved = SetStatus(event_id=uuid.uuid4(), occurred_at=NOW, ticket_id="SB-2", agent_id="ben", status="pending")
    view.absorb(decide_command(solved, view, config, NOW).events)
    second = decide_inbound(message("SB-5"), view, config, NOW)
    view.absorb(second.events)
    [assigned] = [event for event in second.events if isinstance(event, TicketAssigned)]
    assert assigned.agent_id == "ben" and view.working["ben"] == 1 and view.capacity_checked == {"ben"}
    third = decide_inbound(message("SB-6"), view, config, NOW)
    assert "ticket.queued" in types(third) and "ticket.assigned" not in types(third)


def types(decision) -> list[str]:
    return [event.type for event in decision.events]


def message(ticket_id: str) -> InboundMessage:
    return InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id=ticket_id,
        received_at=NOW,
        channel="form",
        channel_message_id=ticket_id,
        source="contact",
        sender=Sender(name="Customer", email=f"{ticket_id.lower()}@example.com"),
        text="help",
    )
