"""The scaffold of a consumer service: settings, config, one broker, Redis, metrics, ops endpoints.

Each service module adds its handlers to `ConsumerService.broker` and calls `app()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import FastStream
from faststream.asgi import AsgiFastStream
from prometheus_client import CollectorRegistry

from shared.broker import SUBSCRIBER_DEFAULTS, ConsumerPolicy, make_broker
from shared.config import load_config
from shared.ops import ops_routes
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.topics import Topics, TopicSpec, ensure_topics


class ConsumerService:
    def __init__(self, name: str, group_id: str, settings: Settings | None = None):
        self.name = name
        self.group_id = group_id
        self.settings = settings or Settings()
        self.config = load_config(self.settings.config)
        self.bootstrap, redis_url = self.settings.require_infra()
        self.topics = Topics(self.settings.topic_prefix)
        self.registry = CollectorRegistry()
        self.policy = ConsumerPolicy(
            self.topics,
            group_id=group_id,
            registry=self.registry,
            retry_deadline=self.settings.retry_deadline_seconds,
        )
        self.broker = make_broker(self.bootstrap, client_id=name, policy=self.policy, registry=self.registry)
        self.redis = connect_redis(redis_url)
        self.logger = logging.getLogger(f"services.{name}")

    def subscriber(self, spec: TopicSpec) -> Callable[..., Any]:
        """Subscribes a handler to `spec`'s topic in this service's consumer group."""
        return self.broker.subscriber(self.topics.name(spec), group_id=self.group_id, **SUBSCRIBER_DEFAULTS)

    def app(self, background: Callable[[], Awaitable[None]] | None = None) -> AsgiFastStream:
        """The runnable app; `background`, if given, runs for the app's lifetime and is awaited on stop."""
        app = FastStream(self.broker, logger=self.logger)
        tasks: list[asyncio.Task[None]] = []

        @app.on_startup
        async def create_topics() -> None:
            await ensure_topics(self.bootstrap, self.topics)

        if background is not None:

            @app.after_startup
            async def start_background() -> None:
                tasks.append(asyncio.create_task(background(), name=f"{self.name}-background"))

            @app.on_shutdown
            async def stop_background() -> None:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        @app.after_shutdown
        async def close_redis() -> None:
            await self.redis.aclose()

        return app.as_asgi(asgi_routes=ops_routes(self.broker, self.redis, self.registry))
