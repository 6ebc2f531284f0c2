"""The router process: consumes inbound messages and agent commands, publishes ticket and contact events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.knowledge.store import KnowledgeCache
from services.router.dispatcher import Dispatcher
from services.router.handler import RouterHandler
from services.router.state import RouterState
from shared.process import ServiceProcess
from shared.read_model import ReadModel
from shared.settings import Settings
from shared.tasks import running
from shared.topics import COMMANDS, CONTACTS, INBOUND, TICKETS, Subscription

SUBSCRIPTION = Subscription("router", "switchboard-router", consumes=(INBOUND, COMMANDS), publishes=(TICKETS, CONTACTS))


def create_app(settings: Settings | None = None) -> FastAPI:
    process = ServiceProcess("router", settings)
    dispatcher = Dispatcher(process.config, process.redis, process.publisher, process.topics, process.gate)
    handler = RouterHandler(
        process.config,
        RouterState(process.redis),
        ReadModel(process.redis),
        process.topics,
        on_queue_change=dispatcher.wake,
        knowledge=KnowledgeCache(process.redis),
    )
    process.consume(SUBSCRIPTION.group_id, SUBSCRIPTION.consumes, handler)

    @asynccontextmanager
    async def dispatch() -> AsyncIterator[None]:
        async with running(dispatcher.run(), name="router-dispatcher"):
            yield

    return process.app(while_running=dispatch)
