"""The scaffold of every Switchboard process, intake and consumer alike.

A `ServiceProcess` holds the settings, the desk config, one Redis client, one `Publisher` (the
only producer of the process) and one metrics registry. `consume()` adds a `ConsumerEngine`;
`app()` builds the process's ASGI app: its lifespan creates the topics, starts the publisher,
runs the engines and whatever `while_running` adds (an SMTP server, an IMAP poller, timers; several
at once with `together`), and it serves `/healthz`, `/readyz` (real Kafka and Redis round trips, and
every engine's health) and `/metrics`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.exceptions import RedisError

from shared.config import load_config
from shared.engine import BatchHandler, ConsumerEngine, FailurePolicy
from shared.publisher import Publisher
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.state import REPLAY_HINT, StateGate, ensure_state
from shared.tasks import running
from shared.topics import Topics, TopicSpec, ensure_topics

logger = logging.getLogger(__name__)

# With Kafka gone the producer would wait forever to flush what it still holds; whoever sent
# those records never got an acknowledgement, so they send again.
SHUTDOWN_FLUSH_SECONDS = 15.0

ReadinessCheck = Callable[[], dict[str, Any]]
WhileRunning = Callable[[], AbstractAsyncContextManager[None]]


def together(*parts: WhileRunning) -> WhileRunning:
    """One `while_running` of several: entered in the order given, left in reverse."""

    @asynccontextmanager
    async def all_running() -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for part in parts:
                await stack.enter_async_context(part())
            yield

    return all_running


class ServiceProcess:
    def __init__(self, name: str, settings: Settings | None = None):
        self.name = name
        self.settings = settings or Settings()
        self.config = load_config(self.settings.config)
        self.bootstrap, redis_url = self.settings.require_infra()
        self.topics = Topics(self.settings.topic_prefix)
        self.registry = CollectorRegistry()
        self.publisher = Publisher(self.bootstrap, client_id=name, registry=self.registry)
        self.redis = connect_redis(redis_url)
        self.engines: list[ConsumerEngine] = []
        self.checks: list[ReadinessCheck] = []
        self.gate = StateGate(self.redis)

    def consume(
        self, group_id: str, specs: Sequence[TopicSpec], handler: BatchHandler, *, max_batch: int = 500
    ) -> ConsumerEngine:
        """Runs `handler` over the topics of `specs` in consumer group `group_id` while the app runs."""
        engine = ConsumerEngine(
            name=self.name,
            bootstrap=self.bootstrap,
            group_id=self.topics.group(group_id),
            topics=self.topics,
            specs=specs,
            handler=handler,
            publisher=self.publisher,
            registry=self.registry,
            max_batch=max_batch,
            policy=FailurePolicy(stopped_retry_seconds=self.settings.stopped_partition_retry_seconds),
            gate=self.gate,
        )
        self.engines.append(engine)
        return engine

    def app(
        self,
        while_running: WhileRunning = nullcontext,
        title: str | None = None,
    ) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await ensure_topics(self.bootstrap, self.topics)
            await ensure_state(self.redis, self.bootstrap, self.topics)
            await self.publisher.start()
            try:
                async with AsyncExitStack() as stack:
                    # Entered first, left last: what the engines' work relies on outlives the engines.
                    await stack.enter_async_context(while_running())
                    for engine in self.engines:
                        await stack.enter_async_context(running(engine.run(), name=f"{self.name}:{engine.group_id}"))
                    yield
            finally:
                try:
                    async with asyncio.timeout(SHUTDOWN_FLUSH_SECONDS):
                        await self.publisher.stop()
                except TimeoutError:
                    logger.warning("stopped without flushing: Kafka is unreachable")
                await self.redis.aclose()

        # Trace context travels in Kafka headers (shared.events); FastAPI's own OpenTelemetry instruments
        # nothing here (no SDK is configured) yet looked its providers up on every request.
        no_telemetry = {"tracing": False, "metrics": False, "logs": False}
        app = FastAPI(title=title or f"Switchboard {self.name}", lifespan=lifespan, telemetry=no_telemetry)
        self._add_ops_endpoints(app)
        return app

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        checks: dict[str, Any] = {"kafka": await self.publisher.ping(timeout=2.0)}
        try:
            checks["redis"] = bool(await self.redis.ping())
            checks["state"] = await self.gate.is_open() or {"ok": False, "problem": REPLAY_HINT}
        except RedisError:
            checks["redis"] = False
        for engine in self.engines:
            checks[engine.group_id] = engine.health()
        for check in self.checks:
            checks.update(check())
        ready = all(value.get("ok", False) if isinstance(value, dict) else bool(value) for value in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks, **restart_record(self.settings)}
        return (200 if ready else 503), body

    def _add_ops_endpoints(self, app: FastAPI) -> None:
        @app.get("/healthz", include_in_schema=False)
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @app.get("/readyz", include_in_schema=False)
        async def readyz() -> JSONResponse:
            status, body = await self.readiness()
            return JSONResponse(status_code=status, content=body)

        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def restart_record(settings: Settings) -> dict[str, Any]:
    """`{"restarts": 2, "previous_exit": "signal SIGKILL"}` for a process `switchboard up` restarted, else `{}`."""
    if settings.restart_count is None:
        return {}
    return {"restarts": settings.restart_count, "previous_exit": settings.previous_exit or ""}
