"""Running one Switchboard service in this process (`switchboard run SERVICE`)."""

from __future__ import annotations

import gc
import importlib
import logging

import uvicorn

from shared.logs import configure_logging
from shared.settings import Settings

# Each service's app factory; all but intake-http serve their ops endpoints on OPS_PORT.
APP_FACTORIES = {
    "intake-http": "services.intake.http",
    "intake-smtp": "services.intake.smtp",
    "intake-imap": "services.intake.imap",
    "router": "services.router.app",
    "sla": "services.sla.app",
    "notifier": "services.notifier.app",
}
SERVICES = tuple(APP_FACTORIES)
# uvicorn closes a WebSocket (1009) on a frame past this before reading it into memory; its default
# is 16 MiB. Web chat frames are limited to 16 KiB (services.intake.chat): those in between get an
# error frame first.
WS_MAX_FRAME_BYTES = 64 * 1024

# A batch of 500 records allocates hundreds of thousands of short-lived objects (events, dicts,
# pydantic models); with CPython's default gen-0 threshold (700) the collector ran thousands of
# times a second and kept rescanning the long-lived heap: about half the router's CPU in the bench.
GC_GEN0_THRESHOLD = 20_000

logger = logging.getLogger(__name__)


def run_service(name: str, settings: Settings) -> None:
    configure_logging(name, settings.log_level, settings.secret_values())
    app = importlib.import_module(APP_FACTORIES[name]).create_app(settings)
    tune_garbage_collector()
    port = settings.http_port if name == "intake-http" else settings.ops_port
    uvicorn.run(
        app,
        host=settings.http_host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        ws_max_size=WS_MAX_FRAME_BYTES,
        # X-Forwarded-For is believed only from proxies named explicitly; none are by default.
        proxy_headers=False,
    )


def tune_garbage_collector() -> None:
    """Leaves what start-up built (modules, schemas, the config) out of every later collection and
    collects the young generation less often; reference cycles are still collected."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
