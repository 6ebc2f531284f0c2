"""The pure parts of `switchboard bench`: statistics, options, workload shapes, the report, the fake Slack."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import aiohttp
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from shared.config import load_config
from shared.events import InboundMessage, ticket_event_adapter
from shared.ids import TICKET_ID_PATTERN
from shared.settings import EXAMPLE_CONFIG
from switchboard.bench.fake_slack import FakeSlack
from switchboard.bench.infra import with_database
from switchboard.bench.options import BenchOptions, parse_instances
from switchboard.bench.report import SCHEMA, Measurements, build_report, cpu_summary
from switchboard.bench.stats import Rate, active_rate, latency_summary, rate_series, tenths
from switchboard.bench.workload import Workload
from switchboard.cli import main


def test_latency_percentiles_interpolate_between_ranks_in_milliseconds():
    summary = latency_summary([second / 1000 for second in range(1, 101)])  # 1 … 100 ms
    assert summary["count"] == 100
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p95_ms"] == pytest.approx(95.05)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["max_ms"] == pytest.approx(100)
    assert summary["mean_ms"] == pytest.approx(50.5)


def test_no_latencies_summarise_to_a_count_of_zero():
    assert latency_summary([]) == {
        "count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None, "max_ms": None,
    }  # fmt: skip


def test_rate_counts_only_the_time_the_counter_was_moving():
    # Idle start-up until 2.0 s, 100 items by 3.0 s, 200 by 4.0 s, idle afterwards.
    samples = [(0.0, 0), (1.0, 0), (2.0, 0), (3.0, 100), (4.0, 200), (5.0, 200), (6.0, 200)]
    rate = active_rate(samples)
    assert (rate.count, rate.seconds, rate.per_second) == (200, 2.0, 100.0)


def test_rate_of_a_counter_that_never_moved_is_zero():
    assert active_rate([(0.0, 5), (1.0, 5)]) == Rate(0, 0.0)
    assert active_rate([]).per_second == 0.0


@given(
    rate=st.integers(min_value=1, max_value=10_000),
    idle_before=st.integers(min_value=0, max_value=20),
    busy=st.integers(min_value=1, max_value=50),
    idle_after=st.integers(min_value=0, max_value=20),
)
def test_a_steady_counter_yields_its_rate(rate, idle_before, busy, idle_after):
    interval = 0.2
    values = [0] * (idle_before + 1) + [rate * step for step in range(1, busy + 1)] + [rate * busy] * idle_after
    samples = [(index * interval, value * interval) for index, value in enumerate(values)]
    measured = active_rate(samples)
    assert measured.count == pytest.approx(rate * busy * interval)
    assert measured.per_second == pytest.approx(rate)


def test_rate_series_differentiates_over_a_window():
    samples = [(t / 2, 10 * t) for t in range(7)]  # 20 per second throughout
    series = rate_series(samples, window=1.0)
    assert [t for t, _ in series] == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert all(value == pytest.approx(20) for _, value in series)


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0, 0), (0.099, 0), (0.1, 1), (0.3, 3), (0.999, 9), (1, 10), (4, 10)]
)
def test_progress_tenths(fraction, expected):
    assert tenths(fraction) == expected


def test_instances_parse_per_stage():
    assert parse_instances("router=2, notifier=3") == {"router": 2, "notifier": 3}
    assert parse_instances("intake-http=2") == {"intake": 2}
    assert parse_instances("") == {} and parse_instances(None) == {}


@pytest.mark.parametrize("text", ["router", "mailer=2", "router=0", "router=x", "router=99", "router=1,router=2"])
def test_bad_instances_say_which_part_is_wrong(text):
    with pytest.raises(ValueError, match=re.escape(repr(text.split(",")[-1]))):
        parse_instances(text)


def test_options_name_the_processes_to_start():
    options = BenchOptions(only="router", instances={"router": 2})
    assert options.stages == ("router",) and options.backlog
    assert options.processes() == [("router", "router-1"), ("router", "router-2")]
    whole = BenchOptions(instances={"notifier": 2})
    assert [label for _, label in whole.processes()] == [
        "intake-http-1", "router-1", "sla-1", "notifier-1", "notifier-2",
    ]  # fmt: skip
    assert not whole.backlog and not BenchOptions(only="intake").backlog


def test_options_refuse_instances_of_a_stage_that_does_not_run():
    with pytest.raises(ValueError, match="notifier"):
        BenchOptions(only="router", instances={"notifier": 2})


def test_cli_rejects_bad_options_before_starting_anything():
    runner = CliRunner()
    bad_instances = runner.invoke(main, ["bench", "--instances", "mailer=2"])
    assert bad_instances.exit_code == 2 and "mailer=2" in bad_instances.output
    idle_stage = runner.invoke(main, ["bench", "--only", "router", "--instances", "sla=2"])
    assert idle_stage.exit_code == 2 and "sla" in idle_stage.output
    assert runner.invoke(main, ["bench", "--only", "mailer"]).exit_code == 2


def test_the_services_under_test_get_their_own_redis_database():
    assert with_database("redis://127.0.0.1:6379/0", 15) == "redis://127.0.0.1:6379/15"
    assert with_database("rediss://user:secret@cache:6380", 15) == "rediss://user:secret@cache:6380/15"


def test_workload_records_follow_the_event_schemas():
    workload = Workload(load_config(EXAMPLE_CONFIG), run_nonce=1_764_000_000)
    inbound = [workload.inbound_record(index) for index in range(3)]
    messages = [InboundMessage.model_validate_json(record.value) for record in inbound]
    assert [record.key.decode() for record in inbound] == [message.ticket_id for message in messages]
    assert len({message.ticket_id for message in messages}) == 3
    assert all(re.match(TICKET_ID_PATTERN, message.ticket_id) for message in messages)
    events = [ticket_event_adapter.validate_json(record.value) for record in workload.ticket_records(7)]
    assert [event.type for event in events] == ["ticket.created", "ticket.message_added", "ticket.assigned"]
    assert {event.ticket_id for event in events} == {workload.ticket_id(7)}
    assert json.loads(workload.form_body(2))["email"] == "customer2@example.com"


def _measurements(**overrides) -> Measurements:
    fields = dict(
        options=BenchOptions(n=3, rate=50),
        started_at=datetime(2026, 11, 30, 12, tzinfo=UTC),
        finished_at=datetime(2026, 11, 30, 12, 1, tzinfo=UTC),
        outcome="done",
        infra={"kafka_bootstrap": "127.0.0.1:9092"},
        topic_prefix="bench1.",
        raw=Rate(20_000, 2.0),
        raw_payload_bytes=900,
        timeline=[
            {"t": 0.0, "accepted": 0, "routed": 0, "sla": 0, "notifier": 0, "announced": 0},
            {"t": 1.0, "accepted": 3, "routed": 2, "sla": 4, "notifier": 3, "announced": 1},
            {"t": 2.0, "accepted": 3, "routed": 3, "sla": 12, "notifier": 12, "announced": 2},
        ],
        rss=[{"at": "start", "t": 0.0, "progress": 0.0, "services": {"router-1": 1000}}],
        intake={"sent": 3, "answers": {"202": 3}, "rate": Rate(3, 0.5)},
        expected=["SB-1", "SB-2", "SB-3"],
        acknowledged={"SB-1": 100.0, "SB-2": 100.5, "SB-3": 101.0},
        assigned_at={"SB-1": 100.01, "SB-2": 100.52},
        announced_at={"SB-1": 100.1, "SB-2": 100.7},
        events_by_type={"ticket.created": 3, "sla.deadline_set": 3},
    )
    return Measurements(**(fields | overrides))


def test_report_shape():
    report = json.loads(json.dumps(build_report(_measurements())))
    assert report["schema"] == SCHEMA
    assert set(report) >= {
        "started_at", "finished_at", "outcome", "options", "machine", "infra", "raw_kafka", "stages",
        "ratio_routed_to_raw", "raw_kafka_router_shaped", "ratio_routed_to_router_shaped", "latency", "missing",
        "events_by_type", "rss_bytes", "cpu", "timeline",
    }  # fmt: skip
    stages = report["stages"]
    assert list(stages) == ["intake", "router", "sla", "notifier"]
    assert stages["intake"]["per_second"] == 6.0 and stages["intake"]["offered_per_second"] == 50
    assert stages["router"] | {"measured_by": None} == {
        "count": 3, "seconds": 2.0, "per_second": 1.5, "instances": 1, "measured_by": None,
    }  # fmt: skip
    assert stages["notifier"]["announced"]["count"] == 2
    assert report["raw_kafka"]["per_second"] == 10_000.0
    assert report["ratio_routed_to_raw"] == pytest.approx(1.5 / 10_000)
    assert report["raw_kafka_router_shaped"] is None and report["ratio_routed_to_router_shaped"] is None
    shaped = build_report(_measurements(shaped=Rate(3_000, 1.0)))
    assert shaped["raw_kafka_router_shaped"]["per_second"] == 3_000.0
    assert shaped["ratio_routed_to_router_shaped"] == pytest.approx(1.5 / 3_000)
    assigned = report["latency"]["intake_to_assigned"]
    assert assigned["count"] == 2 and assigned["p50_ms"] == pytest.approx(15)
    assert report["latency"]["intake_to_slack"]["max_ms"] == pytest.approx(200)
    assert report["missing"] == {"never_assigned": 1, "never_announced": 1}


def test_cpu_time_is_what_each_process_spent_between_the_first_and_last_sample_per_unit_of_work():
    samples = [
        {"at": "start", "t": 1.0, "services": {}, "cpu_seconds": {"router-1": 2.0, "redis": 1.0, "gone": 1.0}},
        {"at": "50%", "t": 3.0, "services": {}},
        {"at": "end", "t": 5.0, "services": {}, "cpu_seconds": {"router-1": 4.0, "redis": 2.0, "gone": None}},
    ]
    summary = cpu_summary(samples, 10_000, "inbound message routed")
    assert summary["processes"] == {
        "router-1": {"seconds": 2.0, "per_unit_us": 200.0, "cores": 0.5},
        "redis": {"seconds": 1.0, "per_unit_us": 100.0, "cores": 0.25},
    }
    assert (summary["wall_seconds"], summary["cores_busy"], summary["per_unit_us"]) == (4.0, 0.75, 300.0)
    # Nothing to divide by: no work, or fewer than two samples with CPU times (reports of earlier versions).
    assert cpu_summary(samples, 0, "ticket") is None
    assert cpu_summary(samples[:2], 10, "ticket") is None


def test_report_of_one_stage_leaves_out_the_others():
    measured = _measurements(
        options=BenchOptions(n=3, only="router"),
        intake=None,
        acknowledged={},
        timeline=[{"t": 0.0, "routed": 0}, {"t": 1.0, "routed": 3}],
    )
    report = build_report(measured)
    assert list(report["stages"]) == ["router"]
    assert report["latency"] == {}
    assert report["missing"] == {"never_assigned": 1, "never_announced": None}


async def test_fake_slack_answers_at_once_and_remembers_the_first_announcement():
    async with FakeSlack() as slack, aiohttp.ClientSession() as session:
        for text in ("New ticket SB-1764000000000000001 from Ana", "SB-1764000000000000001 again, and SB-7"):
            async with session.post(
                f"{slack.base_url}chat.postMessage", json={"channel": "C0X", "text": text}
            ) as reply:
                body = await reply.json()
                assert body["ok"] is True and body["ts"]
        async with session.post(f"{slack.base_url}auth.test") as reply:
            assert (await reply.json())["ok"] is True
        async with session.post(f"{slack.base_url}users.info", data={"user": "U0ANA"}) as reply:
            assert (await reply.json())["user"]["id"]
    assert set(slack.announced_at) == {"SB-1764000000000000001", "SB-7"}
    assert slack.announced_at["SB-1764000000000000001"] < slack.announced_at["SB-7"]
    assert slack.posts == 2 and slack.calls["auth.test"] == 1
