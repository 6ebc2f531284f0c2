"""Auto-close of solved tickets: the pure timer decisions (services.sla.auto_close, decide, rebuild)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.sla.auto_close import METRIC, auto_close_timer, close_command, still_solved
from services.sla.deadlines import Timer
from services.sla.decide import decide
from services.sla.rebuild import TimerRebuild
from shared.durations import spoken
from shared.events import StatusChanged
from tests.unit.test_sla_decide import CONFIG, created

SOLVED_AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
CLOSE_AFTER = CONFIG.close_after


def change(to: str, *, ticket_id: str = "SB-1001", minutes: int = 0, resolution: int = 1, came_from: str = "open"):
    return StatusChanged(
        event_id=uuid.uuid4(),
        occurred_at=SOLVED_AT + timedelta(minutes=minutes),
        ticket_id=ticket_id,
        correlation_id=f"opening-{ticket_id}",
        from_status=came_from,
        to_status=to,
        actor="ana",
        team="support",
        assignee_id="ana",
        resolution=resolution,
    )


def test_a_solved_ticket_gets_one_auto_close_timer_close_after_the_solve():
    decision = decide([created(), change("solved")], {}, CONFIG)

    [timer] = decision.timers["SB-1001", METRIC]
    assert CLOSE_AFTER == timedelta(days=4)
    assert (timer.metric, timer.resolution, timer.correlation_id) == (METRIC, 1, "opening-SB-1001")
    assert timer.fires_at == (SOLVED_AT + CLOSE_AFTER).timestamp()
    # Solved unanswered: its first-response clock stops (see test_sla_decide); nothing else changes.
    assert decision.timers.keys() == {("SB-1001", "first_response"), ("SB-1001", METRIC)}
    assert decision.timers["SB-1001", "first_response"] == []


def test_a_reopen_stops_the_timer_and_a_ticket_without_status_changes_is_left_alone():
    reopened = [change("solved"), change("open", came_from="solved", minutes=5)]
    assert decide(reopened, {}, CONFIG).timers == {("SB-1001", METRIC): []}
    assert ("SB-1001", METRIC) not in decide([created()], {}, CONFIG).timers


def test_an_older_timer_without_a_resolution_encodes_as_it_was_stored():
    stored = json.dumps(
        {
            "ticket_id": "SB-1001",
            "metric": "first_response",
            "kind": "breach",
            "due_at": SOLVED_AT.isoformat(),
            "fires_at": SOLVED_AT.timestamp(),
            "fraction": 1.0,
            "correlation_id": None,
        },
        sort_keys=True,
    )
    assert Timer.decode(stored).encode() == stored
    timer = auto_close_timer(change("solved", resolution=2), CLOSE_AFTER)
    assert Timer.decode(timer.encode()) == timer


def test_the_close_command_is_one_per_resolution_however_often_its_timer_fires():
    timer = auto_close_timer(change("solved"), CLOSE_AFTER)
    first = close_command(timer, SOLVED_AT + CLOSE_AFTER, CLOSE_AFTER)
    again = close_command(timer, SOLVED_AT + CLOSE_AFTER + timedelta(minutes=1), CLOSE_AFTER)
    later = close_command(auto_close_timer(change("solved", resolution=2), CLOSE_AFTER), SOLVED_AT, CLOSE_AFTER)

    assert (first.status, first.agent_id, first.ticket_id) == ("closed", "system", "SB-1001")
    assert first.reason == "closed automatically 4 days after it was solved"
    assert first.event_id == again.event_id != later.event_id


def test_durations_are_spoken_in_the_largest_exact_unit():
    assert [spoken(timedelta(**kwargs)) for kwargs in ({"days": 4}, {"days": 1}, {"hours": 36}, {"seconds": 90})] == [
        "4 days",
        "1 day",
        "36 hours",
        "90 seconds",
    ]


def test_a_due_timer_closes_only_a_ticket_the_read_model_does_not_know_to_be_reopened():
    timer = auto_close_timer(change("solved", resolution=2), CLOSE_AFTER)
    assert still_solved(timer, "solved", "2")
    # The read model has not caught up with the solve: the router judges.
    assert still_solved(timer, None, None) and still_solved(timer, "open", "1")
    # Reopened (or closed) since, or solved again (a newer timer does the closing).
    assert not still_solved(timer, "open", "2") and not still_solved(timer, "closed", "2")
    assert not still_solved(timer, "solved", "3")


# --- any history ---------------------------------------------------------------------------------

STATUSES = ("open", "pending", "on_hold", "solved", "closed")


@st.composite
def histories(draw) -> tuple[list[StatusChanged], list[int]]:
    """Status changes of two tickets in log order, and where the log is cut into batches."""
    steps = draw(st.lists(st.tuples(st.sampled_from(["SB-1001", "SB-1002"]), st.sampled_from(STATUSES)), max_size=12))
    changes, solves = [], {}
    for minute, (ticket_id, to) in enumerate(steps):
        solves[ticket_id] = solves.get(ticket_id, 0) + (to == "solved")
        changes.append(change(to, ticket_id=ticket_id, minutes=minute, resolution=solves[ticket_id]))
    cuts = draw(st.lists(st.integers(0, len(changes)), max_size=4))
    return changes, sorted(cuts)


@given(histories())
def test_any_history_in_any_batches_leaves_at_most_one_timer_due_close_after_the_last_solve(history):
    changes, cuts = history
    store: dict[str, Timer] = {}  # What TimerStore.replace leaves: one auto-close per ticket at most.
    for start, end in zip([0, *cuts], [*cuts, len(changes)], strict=True):
        for (ticket_id, _), timers in decide(changes[start:end], {}, CONFIG).timers.items():
            store.pop(ticket_id, None)
            if timers:
                store[ticket_id] = timers[-1]

    for ticket_id in ("SB-1001", "SB-1002"):
        own = [c for c in changes if c.ticket_id == ticket_id]
        if own and own[-1].to_status == "solved":
            assert store[ticket_id].fires_at == (own[-1].occurred_at + CLOSE_AFTER).timestamp()
            assert store[ticket_id].resolution == own[-1].resolution
        else:
            assert ticket_id not in store
    # A replay of the same log rebuilds exactly what the live service holds.
    rebuild = TimerRebuild(CONFIG)
    for event in changes:
        rebuild.observe(event)
    assert sorted(t.encode() for t in rebuild.pending()) == sorted(t.encode() for t in store.values())
