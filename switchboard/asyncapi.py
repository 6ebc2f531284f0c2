"""AsyncAPI 3 documents of the Kafka consumers, generated from the topics each one declares it reads
and writes (the `SUBSCRIPTION` its app registers) with FastStream's specification builder."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from services.notifier.app import SUBSCRIPTION as NOTIFIER
from services.router.app import SUBSCRIPTION as ROUTER
from services.sla.app import SUBSCRIPTION as SLA
from shared.settings import Settings
from shared.topics import Subscription, Topics, TopicSpec

CONSUMERS = (ROUTER, SLA, NOTIFIER)


def document(subscription: Subscription, topics: Topics, bootstrap: str) -> dict[str, Any]:
    # Nothing is connected: the broker only describes the channels.
    broker = KafkaBroker(bootstrap)
    for spec in subscription.consumes:
        broker.subscriber(topics.name(spec), group_id=subscription.group_id, description=spec.description)(
            _typed_handler(spec)
        )
    for spec in subscription.publishes:
        broker.publisher(topics.name(spec), schema=spec.schema, description=spec.description)
    app = FastStream(broker, specification=AsyncAPI(title=f"Switchboard {subscription.service}", version="1"))
    return app.schema.to_specification().to_jsonable()


def write_asyncapi(settings: Settings, out: Path) -> list[Path]:
    settings = settings.with_recorded_infra()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for subscription in CONSUMERS:
        body = document(subscription, Topics(settings.topic_prefix), settings.kafka_bootstrap or "localhost:9092")
        path = out / f"{subscription.service}.asyncapi.json"
        path.write_text(json.dumps(body, indent=2) + "\n")
        written.append(path)
    return written


def _typed_handler(spec: TopicSpec) -> Callable[[Any], Awaitable[None]]:
    async def handle(message: Any) -> None:
        """Documentation only: the service's ConsumerEngine handles this topic."""

    handle.__annotations__ = {"message": spec.schema, "return": None}
    handle.__name__ = spec.name.split(".")[1]
    return handle
