"""The router process: consumes inbound messages and agent commands, publishes ticket and contact events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.knowledge.store import KnowledgeCache
from services.router import detection, duplicates
from services.router.dispatcher import Dispatcher
from services.router.handler import RouterHandler
from services.router.state import RouterState
from shared import i18n
from shared.config import DeskConfig
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
        # Before the engine starts: the first batch would otherwise wait a second or so for the models.
        await asyncio.to_thread(load_models, process.config)
        async with running(dispatcher.run(), name="router-dispatcher"):
            yield

    return process.app(while_running=dispatch)


def load_models(config: DeskConfig) -> None:
    """What deciding a ticket loads on first use: the language model, jieba's dictionary (duplicates and
    knowledge-base search cut Chinese with it) and the message catalogues."""
    detection.load_models(config)
    duplicates.load_dictionary()
    i18n.load_catalogues()
