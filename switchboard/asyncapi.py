"""AsyncAPI documents of the Kafka consumers, built from their FastStream apps (as `faststream docs gen`)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from shared.settings import Settings
from switchboard.services import APP_FACTORIES

CONSUMERS = ("router", "sla", "notifier")


def write_asyncapi(settings: Settings, out: Path) -> list[Path]:
    # Building an app connects nothing, so any address will do when no stack is running.
    settings = settings.with_recorded_infra().model_copy(
        update={
            "kafka_bootstrap": settings.kafka_bootstrap or "localhost:9092",
            "redis_url": settings.redis_url or "redis://localhost:6379/0",
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for service in CONSUMERS:
        app = importlib.import_module(APP_FACTORIES[service]).create_app(settings)
        document = app.schema.to_specification().to_jsonable()
        path = out / f"{service}.asyncapi.json"
        path.write_text(json.dumps(document, indent=2) + "\n")
        written.append(path)
    return written
