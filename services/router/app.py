"""The router process: consumes inbound messages and agent commands, publishes ticket and contact events."""

from __future__ import annotations

from fastapi import FastAPI

from services.router.handler import RouterHandler
from services.router.state import RouterState
from shared.process import ServiceProcess
from shared.read_model import ReadModel
from shared.settings import Settings
from shared.topics import COMMANDS, CONTACTS, INBOUND, TICKETS, Subscription

SUBSCRIPTION = Subscription("router", "switchboard-router", consumes=(INBOUND, COMMANDS), publishes=(TICKETS, CONTACTS))


def create_app(settings: Settings | None = None) -> FastAPI:
    process = ServiceProcess("router", settings)
    handler = RouterHandler(process.config, RouterState(process.redis), ReadModel(process.redis), process.topics)
    process.consume(SUBSCRIPTION.group_id, SUBSCRIPTION.consumes, handler)
    return process.app()
