"""The bench report: what was measured, as JSON (pure), and as a table on the terminal."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from switchboard.bench.options import BenchOptions
from switchboard.bench.stats import Rate, active_rate, latency_summary

SCHEMA = "switchboard-bench/1"
GROUPS = {"router": "switchboard-router", "sla": "switchboard-sla", "notifier": "switchboard-notifier"}
# Timeline counters of each stage: what the stage's throughput is computed from, and how it was observed.
COUNTERS = {
    "routed": ("router", "inbound records committed by consumer group switchboard-router"),
    "sla": ("sla", "ticket-topic records committed by consumer group switchboard-sla"),
    "notifier": ("notifier", "ticket-topic records committed by consumer group switchboard-notifier"),
    "announced": ("notifier", "tickets named by a first chat.postMessage at the fake Slack"),
}
ASSIGNED_CLOCK = "Kafka timestamp of the ticket.assigned record (CreateTime, set by the router's producer)"
SLACK_CLOCK = "arrival of the first chat.postMessage naming the ticket at the bench's fake Slack"
INTAKE_CLOCK = "the bench's HTTP client receiving intake-http's 202"


@dataclass
class Measurements:
    """Everything one run observed; wall-clock times are time.time() seconds, `t` seconds since the run's start."""

    options: BenchOptions
    started_at: datetime
    finished_at: datetime
    outcome: str  # "done", "stalled" (nothing moved for --grace seconds) or "duration" (cut by --duration)
    infra: Mapping[str, object]
    topic_prefix: str
    raw: Rate
    raw_payload_bytes: int
    # The router-shaped pass-through (load.router_shaped_passthrough), when the run includes the router.
    shaped: Rate | None = None
    timeline: list[dict[str, float]] = field(default_factory=list)
    rss: list[dict] = field(default_factory=list)
    intake: dict | None = None  # sent, answers, the accepted Rate and each 202's seconds, when forms were posted
    flood: dict | None = None  # --flood: its client address, sent, answers and accepted
    expected: Collection[str] = ()  # the run's ticket IDs: accepted forms, or the pre-filled backlog
    acknowledged: Mapping[str, float] = field(default_factory=dict)
    assigned_at: Mapping[str, float] = field(default_factory=dict)
    announced_at: Mapping[str, float] = field(default_factory=dict)
    events_by_type: Mapping[str, int] = field(default_factory=dict)

    def latencies(self, to: Mapping[str, float]) -> list[float]:
        """Seconds from each ticket's 202 to its time in `to`, for the tickets found there."""
        return [to[ticket_id] - acked for ticket_id, acked in self.acknowledged.items() if ticket_id in to]


def build_report(measured: Measurements) -> dict:
    options = measured.options
    stages: dict[str, dict] = {}
    if measured.intake is not None:
        accepted: Rate = measured.intake["rate"]
        stages["intake"] = {
            **accepted.as_json(),
            "offered_per_second": options.rate or None,
            "sent": measured.intake["sent"],
            "answers": dict(measured.intake["answers"]),
            "instances": options.count("intake"),
            "measured_by": f"202 answers, from the first form sent to the last answer ({INTAKE_CLOCK})",
            "answer_latency": {
                **latency_summary(measured.intake.get("answer_seconds", [])),
                "from": "the bench's HTTP client sending a form",
                "to": INTAKE_CLOCK,
            },
        }
    for counter, (stage, how) in COUNTERS.items():
        if stage not in options.stages:
            continue
        rate = active_rate([(row["t"], int(row[counter])) for row in measured.timeline if counter in row])
        entry = {**rate.as_json(), "measured_by": how}
        if counter == "announced":
            stages[stage]["announced"] = entry
        else:
            stages[stage] = {**entry, "instances": options.count(stage)}
    routed = stages.get("router", {}).get("per_second")
    latency = {}
    if measured.acknowledged and "router" in options.stages:
        latency["intake_to_assigned"] = {
            **latency_summary(measured.latencies(measured.assigned_at)),
            "from": INTAKE_CLOCK,
            "to": ASSIGNED_CLOCK,
        }
    if measured.acknowledged and "notifier" in options.stages:
        latency["intake_to_slack"] = {
            **latency_summary(measured.latencies(measured.announced_at)),
            "from": INTAKE_CLOCK,
            "to": SLACK_CLOCK,
        }
    expected = set(measured.expected)
    return {
        "schema": SCHEMA,
        "started_at": measured.started_at.isoformat(),
        "finished_at": measured.finished_at.isoformat(),
        "outcome": measured.outcome,
        "options": options.as_json(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "infra": dict(measured.infra),
        "topic_prefix": measured.topic_prefix,
        "raw_kafka": {**measured.raw.as_json(), "payload_bytes": measured.raw_payload_bytes},
        "stages": stages,
        # Four significant digits: today's ratio is in the thousandths, the target 0.3.
        "ratio_routed_to_raw": float(f"{routed / measured.raw.per_second:.4g}")
        if routed and measured.raw.per_second
        else None,
        "raw_kafka_router_shaped": {
            **measured.shaped.as_json(),
            "records_out_per_record_in": 3,
            "measured_by": "a consumer group answering each inbound record with the router's three records "
            "for a new ticket, acknowledgements awaited, committed per batch; no Redis, no decisions",
        }
        if measured.shaped
        else None,
        "ratio_routed_to_router_shaped": float(f"{routed / measured.shaped.per_second:.4g}")
        if routed and measured.shaped and measured.shaped.per_second
        else None,
        "latency": latency,
        "flood": {**measured.flood, "answers": dict(measured.flood["answers"])} if measured.flood else None,
        "tickets": len(expected),
        "missing": {
            "never_assigned": _missing(expected, measured.assigned_at) if "router" in options.stages else None,
            "never_announced": _missing(expected, measured.announced_at) if "notifier" in options.stages else None,
        },
        "events_by_type": dict(sorted(measured.events_by_type.items())),
        "rss_bytes": measured.rss,
        "cpu": cpu_summary(measured.rss, *_work_unit(options, stages, len(expected))),
        "timeline": measured.timeline,
    }


def _work_unit(options: BenchOptions, stages: Mapping[str, dict], tickets: int) -> tuple[int, str]:
    """What the run's CPU time is divided by: the measured stage's records, or the whole stack's tickets."""
    if options.only == "intake":
        return stages["intake"]["count"], "form accepted"
    if options.only == "router":
        return stages["router"]["count"], "inbound message routed"
    if options.only in ("sla", "notifier"):
        return stages[options.only]["count"], "ticket event"
    return tickets, "ticket"


def cpu_summary(samples: list[dict], units: int, unit: str) -> dict | None:
    """CPU time each process spent between the first sample ("start": before the work began) and the last
    ("end"), read from the samples' `cpu_seconds` (label → seconds, None once gone), and per unit of work.

    Returns {"unit", "units", "wall_seconds", "cores_busy" (all the processes' CPU over the wall time),
    "processes": {label: {"seconds", "per_unit_us", "cores"}}}, or None without two CPU samples or any work.
    """
    timed = [sample for sample in samples if sample.get("cpu_seconds")]
    if len(timed) < 2 or units <= 0:
        return None
    first, last = timed[0], timed[-1]
    wall = last["t"] - first["t"]
    if wall <= 0:
        return None
    processes = {}
    for label, before in first["cpu_seconds"].items():
        after = last["cpu_seconds"].get(label)
        if before is None or after is None:
            continue
        spent = after - before
        processes[label] = {
            "seconds": round(spent, 3),
            "per_unit_us": round(spent / units * 1e6, 1),
            "cores": round(spent / wall, 3),
        }
    total = sum(entry["seconds"] for entry in processes.values())
    return {
        "unit": unit,
        "units": units,
        "wall_seconds": round(wall, 3),
        "cores_busy": round(total / wall, 3),
        "per_unit_us": round(total / units * 1e6, 1),
        "processes": processes,
    }


def _missing(expected: set[str], seen: Mapping[str, float]) -> int:
    return sum(1 for ticket_id in expected if ticket_id not in seen)


def default_report_path(data_dir: Path, started_at: datetime) -> Path:
    return Path(data_dir) / "bench" / f"bench-{started_at:%Y%m%dT%H%M%S}.json"


def write_report(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def print_summary(report: dict, console: Console) -> None:
    table = Table(title=f"switchboard bench — {report['outcome']}", title_justify="left")
    for column in ("measure", "value", "how"):
        table.add_column(column, overflow="fold")
    raw = report["raw_kafka"]
    table.add_row("raw aiokafka pass-through", f"{raw['per_second']:,.0f}/s", f"{raw['count']:,} records")
    for stage, entry in report["stages"].items():
        label = {"intake": "accepted", "router": "routed", "sla": "sla events", "notifier": "notifier events"}[stage]
        table.add_row(
            f"{label} ({entry['instances']}×)",
            f"{entry['per_second']:,.1f}/s",
            f"{entry['count']:,} in {entry['seconds']} s",
        )
        if "announced" in entry:
            announced = entry["announced"]
            table.add_row("notified", f"{announced['per_second']:,.1f}/s", f"{announced['count']:,} tickets")
    answered = report["stages"].get("intake", {}).get("answer_latency", {})
    if answered.get("count"):
        figures = " / ".join(f"{answered[f'p{q}_ms']:,.0f}" for q in (50, 95, 99))
        table.add_row("form→202 p50/95/99", f"{figures} ms", f"{answered['count']:,} forms")
    if (flood := report.get("flood")) is not None:
        limited = flood["answers"].get("429", 0)
        table.add_row(
            "flood accepted / 429",
            f"{flood['accepted']:,} / {limited:,}",
            f"of {flood['sent']:,} from {flood['client']} in {flood['seconds']} s",
        )
    if report["ratio_routed_to_raw"] is not None:
        table.add_row("ratio routed/raw", f"{report['ratio_routed_to_raw']:.4g}", "")
    if (shaped := report.get("raw_kafka_router_shaped")) is not None:
        table.add_row("router-shaped pass-through", f"{shaped['per_second']:,.0f}/s", "one in, three out, no work")
        table.add_row("ratio routed/router-shaped", f"{report['ratio_routed_to_router_shaped']:.4g}", "")
    for name, summary in report["latency"].items():
        if summary["count"]:
            figures = " / ".join(f"{summary[f'p{q}_ms']:,.0f}" for q in (50, 95, 99))
            label = name.replace("_to_", "→").replace("_", " ")
            table.add_row(f"{label} p50/95/99", f"{figures} ms", f"{summary['count']:,} tickets")
    for name, count in report["missing"].items():
        if count is not None:
            table.add_row(name.replace("_", " "), f"{count:,}", f"of {report['tickets']:,} tickets")
    for label, first, last in _rss_span(report["rss_bytes"]):
        table.add_row(f"RSS {label}", f"{first / 2**20:,.0f} → {last / 2**20:,.0f} MiB", "start → end")
    if (cpu := report.get("cpu")) is not None:
        for label, entry in cpu["processes"].items():
            table.add_row(
                f"CPU {label}", f"{entry['per_unit_us']:,.0f} µs per {cpu['unit']}", f"{entry['cores']:.2f} cores"
            )
        table.add_row(
            "CPU all of the above",
            f"{cpu['per_unit_us']:,.0f} µs per {cpu['unit']}",
            f"{cpu['cores_busy']:.2f} cores busy of {report['machine']['cpus']}, over {cpu['wall_seconds']:,.0f} s",
        )
    console.print(table)


def _rss_span(samples: list[dict]) -> list[tuple[str, int, int]]:
    if not samples:
        return []
    first, last = samples[0]["services"], samples[-1]["services"]
    return [(label, first[label], last[label]) for label in first if first[label] and last.get(label)]
