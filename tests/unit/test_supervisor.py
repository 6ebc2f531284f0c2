"""What `switchboard up` decides about its children: scale, exits in words, restarts and crash loops."""

from __future__ import annotations

import signal

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from shared.process import restart_record
from shared.settings import Settings
from switchboard.cli import main
from switchboard.services import SERVICES
from switchboard.supervisor import (
    CrashLoop,
    Restart,
    RestartHistory,
    RestartPolicy,
    ScaleError,
    describe_exit,
    instance_names,
    parse_scale,
)

POLICY = RestartPolicy(first_delay=0.5, max_delay=30.0, healthy_after=30.0, max_restarts=5, window=60.0)


def test_scale_items_may_be_comma_separated_or_repeated():
    assert parse_scale(["router=2,notifier=2", " sla = 3 "], SERVICES) == {"router": 2, "notifier": 2, "sla": 3}
    assert parse_scale([], SERVICES) == {}
    assert parse_scale(["intake-http=1", "router=2", "router=2"], SERVICES) == {"intake-http": 1, "router": 2}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("router", "expected SERVICE=COUNT"),
        ("router=two", "expected SERVICE=COUNT"),
        ("routr=2", "unknown service 'routr'; one of intake-http, intake-smtp"),
        ("router=0", "at least 1 instance"),
        ("router=-1", "at least 1 instance"),
        ("intake-http=2", "intake-http runs once, because it binds the one HTTP port"),
        ("intake-smtp=2", "intake-smtp runs once, because it binds the one SMTP port"),
        ("intake-imap=2", "intake-imap runs once, because it polls one mailbox"),
        ("router=2,router=3", "router was already given 2"),
    ],
)
def test_a_bad_scale_is_refused_with_the_reason(value, reason):
    with pytest.raises(ScaleError, match=reason):
        parse_scale([value], SERVICES)


def test_up_refuses_a_bad_scale_before_starting_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["up", "--scale", "router=2,intake-http=2"])
    assert result.exit_code == 2
    assert "Invalid value for '--scale': 'intake-http=2': intake-http runs once" in result.output
    assert not list(tmp_path.iterdir()), "nothing was started"


def test_instances_are_numbered_only_when_there_are_several():
    assert instance_names("router", 1) == ["router"]
    assert instance_names("router", 3) == ["router-1", "router-2", "router-3"]


def test_an_exit_is_described_by_its_code_or_its_signal():
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "signal SIGSEGV"
    assert describe_exit(-99) == "signal 99"


def test_quick_exits_back_off_exponentially_up_to_the_cap():
    history = RestartHistory(RestartPolicy(first_delay=1, max_delay=5, healthy_after=30, max_restarts=100))
    now, delays = 0.0, []
    for _ in range(5):
        decision = history.exited(started_at=now, now=now + 2)
        delays.append(decision.delay)
        now = decision.at
    assert delays == [1, 2, 4, 5, 5]
    assert history.restarts == 5


def test_a_healthy_run_resets_the_backoff_but_not_the_restart_count():
    history = RestartHistory(POLICY)
    assert history.exited(started_at=0, now=1) == Restart(number=1, delay=0.5, at=1.5)
    assert history.exited(started_at=1.5, now=2) == Restart(number=2, delay=1.0, at=3.0)
    assert history.exited(started_at=3, now=100) == Restart(number=3, delay=0.5, at=100.5)


def test_more_restarts_than_allowed_within_the_window_is_a_crash_loop():
    history = RestartHistory(POLICY)
    now = 0.0
    for number in range(1, 6):
        decision = history.exited(started_at=now, now=now + 1)
        assert decision.number == number
        now = decision.at
    assert history.exited(started_at=now, now=now + 1) == CrashLoop(exits=6, window=60.0)


def test_exits_spread_wider_than_the_window_are_no_crash_loop():
    history = RestartHistory(POLICY)
    for minute in range(20):
        assert isinstance(history.exited(started_at=minute * 61.0, now=minute * 61.0 + 15), Restart)


@given(runs=st.lists(st.floats(min_value=0, max_value=120, allow_nan=False), max_size=40))
def test_backoff_and_crash_loop_properties(runs):
    history = RestartHistory(POLICY)
    now, restart_times = 0.0, []
    for ran in runs:
        decision = history.exited(started_at=now, now=now + ran)
        if isinstance(decision, CrashLoop):
            # Only more than max_restarts exits within the window stop everything.
            window_start = now + ran - POLICY.window
            assert len([at for at in restart_times if at >= window_start]) >= POLICY.max_restarts
            return
        assert POLICY.first_delay <= decision.delay <= POLICY.max_delay
        # As the supervisor measures it: exit time minus start time (floating point, e.g. 64.907 - 34.907).
        if (now + ran) - now >= POLICY.healthy_after:
            assert decision.delay == POLICY.first_delay
        assert decision.number == len(restart_times) + 1
        restart_times.append(now + ran)
        # Never more than max_restarts restarts within any window.
        assert len([at for at in restart_times if at >= now + ran - POLICY.window]) <= POLICY.max_restarts
        now = decision.at


def test_readyz_shows_the_restart_up_told_the_process_about(monkeypatch):
    assert restart_record(Settings()) == {}
    monkeypatch.setenv("SWITCHBOARD_RESTART_COUNT", "2")
    monkeypatch.setenv("SWITCHBOARD_PREVIOUS_EXIT", "signal SIGKILL")
    assert restart_record(Settings()) == {"restarts": 2, "previous_exit": "signal SIGKILL"}
