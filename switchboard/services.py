"""Running one Switchboard service in this process (`switchboard run SERVICE`)."""

from __future__ import annotations

import asyncio
import logging

from shared.logs import configure_logging
from shared.settings import Settings

SERVICES = ("intake-http", "router", "sla", "notifier")

logger = logging.getLogger(__name__)


def run_service(name: str, settings: Settings) -> None:
    configure_logging(name, settings.log_level)
    logger.info("starting", extra={"service_name": name})
    if name == "intake-http":
        _run_http(settings)
        return
    if name == "router":
        from services.router.app import create_app
    elif name == "sla":
        from services.sla.app import create_app
    elif name == "notifier":
        from services.notifier.app import create_app
    else:
        raise ValueError(f"unknown service {name!r}; choose one of {', '.join(SERVICES)}")
    asyncio.run(create_app(settings).run())


def _run_http(settings: Settings) -> None:
    import uvicorn

    from services.intake.http import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
