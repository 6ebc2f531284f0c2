"""One bench run: private topics, the fake Slack, the raw pass-through, the services under test, load, observation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.config import load_config
from shared.settings import Settings
from shared.topics import INBOUND, TICKETS, Topics, ensure_topics
from switchboard.bench.fake_slack import FakeSlack
from switchboard.bench.infra import BenchInfra, empty_database
from switchboard.bench.kafka_gauges import KafkaGauges, delete_topics, tally_tickets
from switchboard.bench.load import FormPoster, create_scratch_topic, prefill, raw_passthrough, router_shaped_passthrough
from switchboard.bench.options import BenchOptions
from switchboard.bench.report import GROUPS, Measurements
from switchboard.bench.services import BenchServices, ServiceFailed
from switchboard.bench.stats import tenths
from switchboard.bench.workload import Workload, records_in_order

SAMPLE_INTERVAL = 0.2  # seconds between two readings of the counters
# The raw pass-through moves as many records as the run, within these bounds (a few thousand say
# little, and a million would take longer than the point needs).
RAW_BOUNDS = (20_000, 200_000)
RAW_TIMEOUT = 300
GROUP_JOIN_TIMEOUT = 60
# Tickets the router writes per new ticket (created, opening message, assigned): the sla/notifier backlog.
EVENTS_PER_TICKET = 3


@dataclass
class Observed:
    outcome: str
    timeline: list[dict] = field(default_factory=list)
    rss: list[dict] = field(default_factory=list)
    poster: FormPoster | None = None
    # The --flood client's forms, posted alongside.
    flood: FormPoster | None = None
    expected: list[str] = field(default_factory=list)


async def run_bench(
    options: BenchOptions, settings: Settings, infra: BenchInfra, console: Console, log_dir: Path
) -> tuple[Measurements, dict[str, list[float]]]:
    """Run the bench and return what it measured, and the latencies (name → seconds) for the plot.

    The services' logs go to `log_dir`; everything else they write goes with a temporary DATA_DIR.
    """
    config = load_config(settings.config)
    started_at = datetime.now(UTC)
    nonce = int(started_at.timestamp())
    # A private topic prefix keeps the run's records away from the running stack's services and vice versa.
    topics = Topics(f"{settings.topic_prefix}bench{nonce}.")
    raw_topic = f"{topics.prefix}raw"
    workload = Workload(config, nonce)
    bootstrap = infra.kafka_bootstrap
    # The scratch topic first: by the time the others exist, its partitions have settled on their leader.
    shaped_topics = (f"{topics.prefix}shaped.in", f"{topics.prefix}shaped.out")
    for scratch in (raw_topic, *shaped_topics):
        await create_scratch_topic(bootstrap, scratch)
    await ensure_topics(bootstrap, topics)
    await empty_database(infra.redis_url, new_installation=True)
    try:
        with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as run_dir:
            async with FakeSlack() as slack, KafkaGauges(bootstrap) as gauges:
                raw_count = min(max(options.n, RAW_BOUNDS[0]), RAW_BOUNDS[1])
                console.print(f"raw aiokafka pass-through of {raw_count:,} records on {bootstrap} …")
                async with asyncio.timeout(RAW_TIMEOUT):
                    raw = await raw_passthrough(
                        bootstrap,
                        raw_topic,
                        raw_count,
                        workload.sample_payload(),
                        lambda i: workload.ticket_id(i).encode(),
                    )
                shaped = None
                if "router" in options.stages:
                    console.print(f"router-shaped pass-through of {raw_count:,} records (one in, three out) …")
                    async with asyncio.timeout(RAW_TIMEOUT):
                        shaped = await router_shaped_passthrough(
                            bootstrap, shaped_topics[0], shaped_topics[1], f"{topics.prefix}shaped", workload, raw_count
                        )
                env = _service_env(settings, infra, topics.prefix, slack.base_url, Path(run_dir) / "data")
                env["SWITCHBOARD_CONFIG"] = str(unlimited_capacity(settings.config, Path(run_dir)))
                services = BenchServices(env, log_dir, watched=infra.pids)
                try:
                    observed = await _Run(options, workload, topics, gauges, slack, services, console).execute()
                finally:
                    services.stop_all()
                console.print("reading the ticket topic …")
                tally = await tally_tickets(gauges, topics.name(TICKETS), set(observed.expected))
                announced = dict(slack.announced_at)
    finally:
        await delete_topics(bootstrap, [*topics.all_names(), raw_topic, *shaped_topics])
        await empty_database(infra.redis_url)
    poster = observed.poster
    measured = Measurements(
        options=options,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        outcome=observed.outcome,
        infra=infra.as_json(),
        topic_prefix=topics.prefix,
        raw=raw,
        shaped=shaped,
        raw_payload_bytes=len(workload.sample_payload()),
        timeline=observed.timeline,
        rss=observed.rss,
        intake=(
            {
                "sent": poster.sent,
                "answers": poster.answers,
                "rate": poster.rate_achieved(),
                "answer_seconds": poster.answer_seconds,
            }
            if poster
            else None
        ),
        flood=(
            {
                "client": FLOOD_CLIENT,
                "sent": flood.sent,
                "answers": flood.answers,
                "accepted": flood.accepted,
                # From its first form sent to its last answer.
                "seconds": round((flood.last_answer_at or 0) - (flood.first_sent_at or 0), 3),
            }
            if (flood := observed.flood)
            else None
        ),
        expected=observed.expected,
        acknowledged=poster.acknowledged if poster else {},
        assigned_at=tally.assigned_at,
        announced_at=announced,
        events_by_type=tally.by_type,
    )
    latencies = {
        "intake_to_assigned": measured.latencies(tally.assigned_at) if "router" in options.stages else [],
        "intake_to_slack": measured.latencies(announced) if "notifier" in options.stages else [],
    }
    return measured, latencies


# Where the --flood forms come from (X-Forwarded-For through the loopback proxy the example config trusts):
# an outside address, limited as `limits.form` says, while the run's other forms come from exempt loopback.
FLOOD_CLIENT = "203.0.113.7"
# Its forms are other customers than the run's (the workload's index from here on).
FLOOD_FIRST_INDEX = 10_000_000

# What every agent can take during a run: more than any run sends.
BENCH_CAPACITY = 1_000_000_000


def unlimited_capacity(config: Path, directory: Path) -> Path:
    """A copy of `config` (written into `directory`) whose agents never reach their capacity: a run measures
    how fast tickets flow and are assigned (every eligibility rule and strategy still applies), while with
    the desk's real capacities all but the first few tickets would wait in the team queues."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    for agent in data.get("agents", []):
        agent["capacity"] = BENCH_CAPACITY
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _service_env(settings: Settings, infra: BenchInfra, prefix: str, slack_url: str, data_dir: Path) -> dict[str, str]:
    """The services' settings: this run's Kafka, Redis, topics and fake Slack, and nothing else of the caller's.

    Other SWITCHBOARD_* variables (SMTP relay, Telegram, a real Slack) are left out on purpose: a
    benchmark must never write to real customers or channels.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    env.update(
        SWITCHBOARD_KAFKA_BOOTSTRAP=infra.kafka_bootstrap,
        SWITCHBOARD_REDIS_URL=infra.redis_url,
        SWITCHBOARD_TOPIC_PREFIX=prefix,
        SWITCHBOARD_DATA_DIR=str(data_dir),
        SWITCHBOARD_CONFIG=str(settings.config),
        SWITCHBOARD_HTTP_HOST="127.0.0.1",
        SWITCHBOARD_API_TOKEN=secrets.token_urlsafe(16),
        SWITCHBOARD_SLACK_BOT_TOKEN="xoxb-switchboard-bench",
        SWITCHBOARD_SLACK_API_URL=slack_url,
        SWITCHBOARD_LOG_LEVEL=settings.log_level,
    )
    return env


class _Run:
    def __init__(
        self,
        options: BenchOptions,
        workload: Workload,
        topics: Topics,
        gauges: KafkaGauges,
        slack: FakeSlack,
        services: BenchServices,
        console: Console,
    ):
        self.options = options
        self.workload = workload
        self.inbound = topics.name(INBOUND)
        self.tickets = topics.name(TICKETS)
        self.groups = {stage: topics.group(group_id) for stage, group_id in GROUPS.items()}
        self.gauges = gauges
        self.slack = slack
        self.services = services
        self.console = console
        self.observed = Observed(outcome="running")
        self.started = time.monotonic()

    async def execute(self) -> Observed:
        options = self.options
        if options.backlog:
            await self._prefill()
        started = [self.services.start(name, label) for name, label in options.processes()]
        self.console.print(f"starting {', '.join(service.label for service in started)} …")
        if not options.backlog:
            # Forms wait for nobody: the clock starts once every consumer holds its partitions.
            await self.services.wait_ready(started)
            await self._wait_for_consumer_groups()
            urls = [service.base_url for service in started if service.name == "intake-http"]
            self.observed.poster = FormPoster(
                urls, self.workload, n=options.n, rate=options.rate, duration=options.duration,
                concurrency=options.concurrency,
            )  # fmt: skip
            if options.flood:
                self.observed.flood = FormPoster(
                    urls, self.workload, n=options.flood, rate=options.flood_rate, duration=options.duration,
                    concurrency=options.concurrency, client_address=FLOOD_CLIENT, first_index=FLOOD_FIRST_INDEX,
                )  # fmt: skip
        # A backlog is watched from the moment its consumers spawn, so none of its drain goes unseen.
        self.started = time.monotonic()
        ready = asyncio.create_task(self.services.wait_ready(started), name="bench-ready")
        posting = asyncio.create_task(self.observed.poster.run(), name="bench-forms") if self.observed.poster else None
        flooding = asyncio.create_task(self.observed.flood.run(), name="bench-flood") if self.observed.flood else None
        try:
            with self._progress() as progress:
                self.observed.outcome = await self._observe(progress, ready)
        finally:
            for task in filter(None, (ready, posting, flooding)):
                task.cancel()  # only still running when the run stalled or failed
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.observed.poster is not None:
            self.observed.expected = list(self.observed.poster.acknowledged)
        self._sample_rss("end", self._progress_of(self.observed.timeline[-1]))
        return self.observed

    async def _prefill(self) -> None:
        options, workload = self.options, self.workload
        self.observed.expected = [workload.ticket_id(index) for index in range(options.n)]
        if options.only == "router":
            topic, records, total = self.inbound, records_in_order(workload.inbound_record, options.n), options.n
        else:
            topic, total = self.tickets, options.n * EVENTS_PER_TICKET
            records = records_in_order(workload.ticket_records, options.n)
        with Progress(*_COLUMNS, console=self.console) as progress:
            task = progress.add_task(f"pre-filling {topic}", total=total)
            await prefill(self.gauges.bootstrap, topic, records, lambda done: progress.update(task, completed=done))

    async def _wait_for_consumer_groups(self) -> None:
        """Until each consumer stage's group holds every partition of its topic, so no form waits for a rebalance."""
        wanted = {"router": self.inbound, "sla": self.tickets, "notifier": self.tickets}
        deadline = time.monotonic() + GROUP_JOIN_TIMEOUT
        for stage, topic in wanted.items():
            if stage not in self.options.stages:
                continue
            partitions = len(await self.gauges.partitions(topic))
            while await self.gauges.assigned(self.groups[stage], topic) < partitions:
                self.services.check_alive()
                if time.monotonic() > deadline:
                    raise ServiceFailed(
                        f"consumer group {self.groups[stage]} did not take {topic} within {GROUP_JOIN_TIMEOUT}s"
                    )
                await asyncio.sleep(SAMPLE_INTERVAL)

    async def _observe(self, progress: Progress, ready: asyncio.Task) -> str:
        """Sample the counters until the pipeline has caught up (or stalls, or --duration cuts a drain).

        Memory is read at the last sample before the work started ("start", kept first in the list), at every
        tenth of progress, and at the end.
        """
        bars = {key: progress.add_task(label, total=None) for key, label in self._bars().items()}
        previous: tuple | None = None
        last_change = time.monotonic()
        reached = 0
        while True:
            self.services.check_alive()
            row = await self._sample()
            self.observed.timeline.append(row)
            for key, bar in bars.items():
                progress.update(bar, completed=row[key], total=self._total(key, row))
            fraction = self._progress_of(row)
            if fraction == 0:
                self.observed.rss[:1] = [self._rss_row("start", 0.0)]
            if (now_tenths := tenths(fraction)) > reached:
                reached = now_tenths
                self._sample_rss(f"{reached * 10}%", reached / 10)
            state = tuple(value for key, value in row.items() if key != "t")
            now = time.monotonic()
            if state != previous or not ready.done():
                previous, last_change = state, now  # start-up is no stall
            elif self._caught_up(row):
                return "done"
            if ready.done() and ready.exception() is not None:
                raise ready.exception()
            if now - last_change > self.options.grace:
                return "stalled"
            if self.options.backlog and self.options.duration and now - self.started > self.options.duration:
                return "duration"
            await asyncio.sleep(SAMPLE_INTERVAL)

    async def _sample(self) -> dict:
        stages = self.options.stages
        row: dict = {"t": round(time.monotonic() - self.started, 3)}
        if self.observed.poster is not None:
            row["accepted"] = self.observed.poster.accepted
        if "router" in stages:
            row["routed"] = await self.gauges.committed(self.groups["router"], self.inbound)
        if "sla" in stages:
            row["sla"] = await self.gauges.committed(self.groups["sla"], self.tickets)
        if "notifier" in stages:
            row["notifier"] = await self.gauges.committed(self.groups["notifier"], self.tickets)
            row["announced"] = len(self.slack.announced_at)
        row["inbound_end"] = await self.gauges.end(self.inbound)
        row["tickets_end"] = await self.gauges.end(self.tickets)
        return row

    def _caught_up(self, row: dict) -> bool:
        """Every running consumer has committed up to its topic's end, and no more forms are coming."""
        poster = self.observed.poster
        return (
            (poster is None or poster.finished)
            and (self.observed.flood is None or self.observed.flood.finished)
            and row.get("routed", row["inbound_end"]) >= row["inbound_end"]
            and row.get("sla", row["tickets_end"]) >= row["tickets_end"]
            and row.get("notifier", row["tickets_end"]) >= row["tickets_end"]
        )

    def _progress_of(self, row: dict) -> float:
        """The run's progress (0 … 1), by the stage it is about: at every tenth the services' memory is read."""
        n = self.options.n
        if "router" in self.options.stages:
            return row["routed"] / n
        if self.options.only == "intake":
            return row["accepted"] / n
        return row[self.options.only] / (n * EVENTS_PER_TICKET)

    def _bars(self) -> dict[str, str]:
        labels = {"accepted": "accepted (202)", "routed": "routed", "sla": "sla events", "notifier": "notifier events",
                  "announced": "announced in Slack"}  # fmt: skip
        present = {"accepted": self.observed.poster is not None, "routed": "router" in self.options.stages,
                   "sla": "sla" in self.options.stages, "notifier": "notifier" in self.options.stages,
                   "announced": "notifier" in self.options.stages}  # fmt: skip
        return {key: label for key, label in labels.items() if present[key]}

    def _total(self, key: str, row: dict) -> int:
        if key in ("sla", "notifier"):
            return row["tickets_end"]
        if key == "routed":
            return max(row["inbound_end"], 1)
        return self.options.n

    def _sample_rss(self, at: str, progress: float) -> None:
        self.observed.rss.append(self._rss_row(at, progress))

    def _rss_row(self, at: str, progress: float) -> dict:
        return {
            "at": at,
            "t": round(time.monotonic() - self.started, 3),
            "progress": round(progress, 3),
            "services": self.services.rss(),
            "cpu_seconds": self.services.cpu_seconds(),
        }

    def _progress(self) -> Progress:
        return Progress(*_COLUMNS, console=self.console)


_COLUMNS = (TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
