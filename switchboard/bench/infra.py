"""Which Kafka and Redis a run uses: the running stack's, or a private pair started for the run."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis

from shared.settings import Settings
from shared.state import mark_restored
from switchboard.infra import kafka_jars, recorded_infra, start_infra

# The database the services under test use in a running stack's Redis: their state (SLA timers that
# would fire hours later, read-model entries) must not land among the stack's own. Emptied before and after.
BENCH_REDIS_DB = 15


@dataclass(frozen=True)
class BenchInfra:
    kafka_bootstrap: str
    redis_url: str  # what the services under test use
    started: bool  # True: a private pair in a temporary DATA_DIR, gone after the run
    # "kafka"/"redis" → pid, when known (started by the bench or by `switchboard up`): their CPU is measured.
    pids: Mapping[str, int] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"kafka_bootstrap": self.kafka_bootstrap, "redis_url": self.redis_url, "started_by_bench": self.started}


def with_database(redis_url: str, database: int) -> str:
    """`redis://host:6379/0` → `redis://host:6379/15` (credentials, scheme and query kept)."""
    parts = urlsplit(redis_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def empty_database(redis_url: str, *, new_installation: bool = False) -> None:
    """FLUSHDB on the bench's own database, so no run inherits another's state.

    With `new_installation`, the empty database is marked as holding the state (shared.state): the
    run's topics are new, so there is nothing for a replay to restore.
    """
    redis = Redis.from_url(redis_url)
    try:
        # ASYNC: a database a million tickets large is freed in the background, not within our timeout.
        await redis.flushdb(asynchronous=True)
        if new_installation:
            await mark_restored(redis, "bench")
    finally:
        await redis.aclose()


@contextmanager
def bench_infra(settings: Settings, *, start: bool) -> Iterator[BenchInfra]:
    """SWITCHBOARD_KAFKA_BOOTSTRAP/REDIS_URL, else the stack recorded in DATA_DIR, else (or with `start`) our own.

    In a running stack's Redis the services under test get database BENCH_REDIS_DB.

    Our own pair runs in a temporary DATA_DIR on free loopback ports, reusing the broker jars cached
    under the real DATA_DIR. Call from the main thread: the children are tied to it (start_infra).
    """
    if not start:
        if settings.kafka_bootstrap and settings.redis_url:
            yield BenchInfra(settings.kafka_bootstrap, with_database(settings.redis_url, BENCH_REDIS_DB), started=False)
            return
        if (running := recorded_infra(settings.data_dir)) is not None:
            yield BenchInfra(
                running["kafka_bootstrap"],
                with_database(running["redis_url"], BENCH_REDIS_DB),
                started=False,
                pids={"kafka": running["kafka_pid"], "redis": running["redis_pid"]},
            )
            return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    jars = kafka_jars(settings.data_dir)
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-infra-") as data_dir:
        (Path(data_dir) / jars.name).symlink_to(jars.resolve(), target_is_directory=True)
        local = start_infra(Path(data_dir), detached=False, prefer_default_ports=False)
        try:
            yield BenchInfra(local.endpoints.kafka_bootstrap, local.endpoints.redis_url, started=True, pids=local.pids)
        finally:
            local.stop()
