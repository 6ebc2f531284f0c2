"""`switchboard bench` run as a user would, on a real broker, with today's services as black boxes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Endpoints

pytestmark = pytest.mark.integration

BENCH_TIMEOUT = 300


def bench(tmp_path: Path, *args: str, **env: str) -> dict:
    """Runs `switchboard bench ARGS --json …` and returns its report."""
    report = tmp_path / "report.json"
    # The caller's stack settings stay out; DATA_DIR stays the default so the cached broker jars are found.
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    result = subprocess.run(
        [sys.executable, "-m", "switchboard", "bench", *args, "--grace", "60", "--json", str(report)],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert report.with_suffix(".png").stat().st_size > 0
    return json.loads(report.read_text())


def test_a_backlog_drains_through_the_router_alone_on_a_private_broker(tmp_path: Path):
    report = bench(tmp_path, "--start", "--n", "200", "--only", "router")

    assert report["outcome"] == "done" and report["infra"]["started_by_bench"] is True
    assert list(report["stages"]) == ["router"]
    router = report["stages"]["router"]
    assert router["count"] == 200 and router["per_second"] > 0 and router["instances"] == 1
    assert report["raw_kafka"]["count"] >= 200 and report["raw_kafka"]["per_second"] > 0
    assert report["ratio_routed_to_raw"] > 0
    # The same Kafka traffic as the router's (one in, three out) with no work: what the router is compared with.
    shaped = report["raw_kafka_router_shaped"]
    assert shaped["count"] >= 200 and shaped["per_second"] > 0 and report["ratio_routed_to_router_shaped"] > 0
    assert report["events_by_type"]["ticket.assigned"] == 200
    assert report["missing"] == {"never_assigned": 0, "never_announced": None}
    memory = report["rss_bytes"]
    assert [sample["at"] for sample in memory][0] == "start" and memory[-1]["at"] == "end"
    # 200 records drain within one sampling tick, so the tenths in between may all be skipped.
    assert "100%" in {sample["at"] for sample in memory}
    assert all(sample["services"]["router-1"] > 0 for sample in memory)
    # CPU time per routed message: the router's, and the broker's and Redis's, which the bench started.
    cpu = report["cpu"]
    assert cpu["unit"] == "inbound message routed" and cpu["units"] == 200
    assert {"router-1", "kafka", "redis", "bench"} <= set(cpu["processes"])
    # (200 records are routed in one batch, maybe before the first sample counts any: no lower bound here.)
    assert all(entry["per_unit_us"] >= 0 for entry in cpu["processes"].values())


def test_the_whole_stack_on_the_running_broker(tmp_path: Path, infra: Endpoints):
    report = bench(
        tmp_path,
        "--n", "100", "--rate", "50",
        SWITCHBOARD_KAFKA_BOOTSTRAP=infra.kafka_bootstrap,
        SWITCHBOARD_REDIS_URL=infra.redis_url,
    )  # fmt: skip

    assert report["outcome"] == "done" and report["infra"]["started_by_bench"] is False
    stages = report["stages"]
    assert list(stages) == ["intake", "router", "sla", "notifier"]
    assert stages["intake"]["count"] == 100 and stages["intake"]["answers"] == {"202": 100}
    assert stages["router"]["count"] == 100
    assert stages["notifier"]["announced"]["count"] == 100
    assert report["missing"] == {"never_assigned": 0, "never_announced": 0}
    for name in ("intake_to_assigned", "intake_to_slack"):
        latency = report["latency"][name]
        assert latency["count"] == 100 and latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    assert report["events_by_type"]["ticket.created"] == 100
    assert set(report["rss_bytes"][-1]["services"]) == {"intake-http-1", "router-1", "sla-1", "notifier-1"}
    assert report["cpu"]["unit"] == "ticket" and report["cpu"]["units"] == 100


def test_a_flood_alongside_is_limited_and_the_other_forms_measured(tmp_path: Path, infra: Endpoints):
    report = bench(
        tmp_path,
        "--only", "intake", "--n", "200", "--flood", "500",
        SWITCHBOARD_KAFKA_BOOTSTRAP=infra.kafka_bootstrap,
        SWITCHBOARD_REDIS_URL=infra.redis_url,
    )  # fmt: skip

    intake = report["stages"]["intake"]
    assert intake["answers"] == {"202": 200}, "loopback is exempt in the example config"
    assert intake["answer_latency"]["count"] == 200
    # The example config's `limits.form.ip`: 10 per 10 minutes for an outside client.
    flood = report["flood"]
    assert flood["client"] == "203.0.113.7" and flood["sent"] == 500 and flood["accepted"] == 10
    assert flood["answers"] == {"202": 10, "429": 490} and flood["seconds"] > 0
