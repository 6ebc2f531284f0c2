"""Operational HTTP endpoints every service exposes: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from faststream.asgi import AsgiResponse, get
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError


async def readiness(broker: KafkaBroker, redis: Redis) -> dict[str, bool]:
    """Real round trips to Kafka and Redis, not just open sockets."""
    checks = {"kafka": await broker.ping(timeout=2.0)}
    try:
        checks["redis"] = bool(await redis.ping())
    except RedisError:
        checks["redis"] = False
    return checks


# Set by `switchboard up` when it restarts a process that exited (switchboard/stack.py).
RESTART_COUNT_ENV = "SWITCHBOARD_RESTART_COUNT"
PREVIOUS_EXIT_ENV = "SWITCHBOARD_PREVIOUS_EXIT"


def restart_record() -> dict[str, Any]:
    """`{"restarts": 2, "previous_exit": "signal SIGKILL"}` for a process `switchboard up` restarted, else `{}`."""
    count = os.environ.get(RESTART_COUNT_ENV, "")
    if not count.isdigit():
        return {}
    return {"restarts": int(count), "previous_exit": os.environ.get(PREVIOUS_EXIT_ENV, "")}


def readiness_body(checks: dict[str, bool]) -> tuple[int, dict[str, Any]]:
    ready = all(checks.values())
    return (200 if ready else 503), {"status": "ready" if ready else "not ready", "checks": checks, **restart_record()}


def _json(status: int, body: dict[str, Any]) -> AsgiResponse:
    return AsgiResponse(json.dumps(body).encode(), status, headers={"content-type": "application/json"})


def ops_routes(broker: KafkaBroker, redis: Redis, registry: CollectorRegistry) -> list[tuple[str, Any]]:
    @get
    async def healthz(scope: Any) -> AsgiResponse:
        return _json(200, {"status": "ok"})

    @get
    async def readyz(scope: Any) -> AsgiResponse:
        return _json(*readiness_body(await readiness(broker, redis)))

    @get
    async def metrics(scope: Any) -> AsgiResponse:
        return AsgiResponse(generate_latest(registry), 200, headers={"content-type": CONTENT_TYPE_LATEST})

    return [("/healthz", healthz), ("/readyz", readyz), ("/metrics", metrics)]


def add_ops_endpoints(
    app: Any,
    broker: KafkaBroker,
    redis: Redis,
    registry: CollectorRegistry,
    extra_checks: Callable[[], dict[str, bool]] = dict,
) -> None:
    """The same three endpoints on a FastAPI app (intake-http, intake-smtp, intake-imap)."""
    from fastapi.responses import JSONResponse, Response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        status, body = readiness_body({**await readiness(broker, redis), **extra_checks()})
        return JSONResponse(status_code=status, content=body)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
