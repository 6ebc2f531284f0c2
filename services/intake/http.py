"""intake-http: the web form, the rating page, the read API, health and metrics on one port.

Thin by design: verify, normalise, publish keyed by ticket ID, answer only after the broker
acknowledged (the form: services.intake.form_endpoint). The router does the work downstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from aiokafka.errors import KafkaError
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError
from starlette.types import Scope

from services.intake.body_limit import BodyLimit, header
from services.intake.chat import chat_routes
from services.intake.core import IntakeProcess
from services.intake.csat import csat_routes
from services.intake.field_messages import header_texts
from services.intake.form_endpoint import FormMetrics, form_route, stamp_route
from services.intake.guard import PublicGuard
from services.intake.i18n_routes import i18n_routes
from services.intake.release import NotReleasable, release
from services.intake.slack_events import slack_routes
from services.intake.telegram import WEBHOOK_PATH as TELEGRAM_WEBHOOK_PATH
from services.intake.telegram import telegram_routes
from services.intake.wecom import wecom_routes
from services.intake.whatsapp import WEBHOOK_PATH as WHATSAPP_WEBHOOK_PATH
from services.intake.whatsapp import whatsapp_routes
from services.knowledge.help_centre import help_centre_routes
from services.knowledge.importer import ArticleImporter
from services.knowledge.store import ArticleStore
from services.sla.decide import ticket_sla_adapter
from services.sla.show import clock_rows
from services.sla.timers import clocks_key
from shared import i18n
from shared.events import Channel
from shared.process import together
from shared.read_model import ReadModel
from shared.settings import Settings
from shared.topics import ARTICLES, Topics
from shared.untrusted import same_secret

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
# Request body limits (413 beyond). Forms: what a person types fits 1 MiB many times over; multipart
# gets room for a browser's file part, so that it is refused by name (422) rather than by size.
MAX_BODY_BYTES = 1024 * 1024
MAX_MULTIPART_BODY_BYTES = 25 * 1024 * 1024
# Telegram sends far smaller updates (text is at most 4096 characters), but an oversize one is
# still kept (its text as an attachment) rather than refused for Telegram to redeliver forever.
# WhatsApp webhooks (a few messages, media by reference) get the same room.
MAX_TELEGRAM_BODY_BYTES = 10 * 1024 * 1024


def body_limit(scope: Scope) -> int:
    """The body limit of a request, in bytes: every endpoint that reads a body is bounded."""
    if scope["path"] in (TELEGRAM_WEBHOOK_PATH, WHATSAPP_WEBHOOK_PATH):
        return MAX_TELEGRAM_BODY_BYTES
    media_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
    if scope["path"].startswith("/v1/forms/") and media_type == "multipart/form-data":
        return MAX_MULTIPART_BODY_BYTES
    return MAX_BODY_BYTES


@asynccontextmanager
async def catalogues_loaded() -> AsyncIterator[None]:
    await asyncio.to_thread(i18n.load_catalogues)
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    process = IntakeProcess("intake-http", settings)
    settings, config, redis, intake = process.settings, process.config, process.redis, process.intake
    metrics = FormMetrics(process.registry)
    guard = PublicGuard(redis, config, settings, process.registry)
    read_model = ReadModel(redis)
    api_token = settings.api_token.get_secret_value() if settings.api_token else None
    if api_token is None:
        logger.warning("read API is off: SWITCHBOARD_API_TOKEN is not set")

    kb_folder = config.knowledge_base.path
    importer = (
        ArticleImporter(
            Path(kb_folder),
            config.languages[0],
            ArticleStore(redis),
            process.publisher,
            Topics(settings.topic_prefix).name(ARTICLES),
        )
        if kb_folder
        else None
    )
    # The catalogues are compiled before the app serves (refusals are worded on busy paths); the siteverify
    # client lives as long as the app; the knowledge base's folder is imported before the app serves, then
    # watched while it runs.
    while_running = [catalogues_loaded, guard.running] + ([importer.running] if importer is not None else [])
    app = process.app(while_running=together(*while_running))

    def count_refusal(scope: Scope) -> None:
        if scope["path"].startswith("/v1/forms/"):
            metrics.forms.labels("too_large").inc()

    app.add_middleware(
        BodyLimit,
        limit_for=body_limit,
        on_refused=count_refusal,
        # What a route answers before it knows more of its reader: in the browser's language.
        texts_for=lambda scope: i18n.reader_texts(
            picked=None, accept_language=header(scope, b"accept-language"), desk_locale=config.desk_locale
        ),
    )
    # First among the routes: the busiest one is matched first.
    app.router.routes.insert(0, form_route(intake, config, metrics, guard))
    app.router.routes.append(stamp_route(config, guard))
    app.include_router(chat_routes(intake, guard))
    app.include_router(csat_routes(intake, guard))
    app.include_router(help_centre_routes(intake, guard))
    app.include_router(i18n_routes(config))
    if (telegram := telegram_routes(intake, settings)) is not None:
        app.include_router(telegram)
    if (whatsapp := whatsapp_routes(intake, settings)) is not None:
        app.include_router(whatsapp)
    if (slack := slack_routes(intake, settings)) is not None:
        app.include_router(slack)
    if (wecom := wecom_routes(intake, settings)) is not None:
        app.include_router(wecom)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def customer_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.exception_handler(RedisError)
    async def redis_unavailable(request: Request, error: RedisError) -> JSONResponse:
        logger.error("redis unavailable", extra={"error": repr(error)})
        detail = header_texts(request, config.desk_locale)("refusal.store_unavailable")
        return JSONResponse(status_code=503, content={"detail": detail})

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if api_token is None or scheme.lower() != "bearer" or not same_secret(token, api_token):
            raise HTTPException(
                status_code=401,
                detail="a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.get("/v1/tickets/{ticket_id}", dependencies=[Depends(require_token)])
    async def get_ticket(ticket_id: str) -> dict[str, Any]:
        ticket = await read_model.ticket(ticket_id)
        if ticket is None:
            raise HTTPException(status_code=404, detail=f"no ticket {ticket_id}")
        # Each clock as `switchboard sla show` prints it (the SLA service keeps them until the ticket closes).
        stored = await redis.get(clocks_key(ticket_id))
        state = ticket_sla_adapter.validate_json(stored) if stored is not None else None
        ticket["sla"]["clocks"] = clock_rows(state, config, datetime.now(UTC)) if state is not None else []
        return ticket

    @app.get("/v1/contacts/{contact_id}", dependencies=[Depends(require_token)])
    async def get_contact(contact_id: str) -> dict[str, Any]:
        contact = await read_model.contact(contact_id)
        if contact is None:
            raise HTTPException(status_code=404, detail=f"no contact {contact_id}")
        return contact

    @app.get("/v1/quarantine", dependencies=[Depends(require_token)])
    async def list_quarantine(
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        channel: Channel | None = None,
        reason: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """Quarantined messages, newest first; `reason` filters by reason code."""
        found = await intake.quarantined.list(limit=limit, channel=channel, reason_code=reason)
        return {"messages": found}

    @app.get("/v1/quarantine/{message_id}", dependencies=[Depends(require_token)])
    async def get_quarantined(message_id: UUID) -> dict[str, Any]:
        found = await intake.quarantined.get(message_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no quarantined message {message_id}")
        return found

    @app.post("/v1/quarantine/{message_id}/release", dependencies=[Depends(require_token)])
    async def release_quarantined(message_id: UUID, actor: Annotated[str, Query(min_length=1, max_length=100)]):
        """Releases a message judged spam into its ticket (services.intake.release): `{"ticket_id",
        "released_now", "actor"}`; released before: the same ticket, `released_now` false. 404 unknown,
        409 not releasable (machine mail), 503 while Kafka is down."""
        try:
            released = await release(intake, message_id, actor)
        except NotReleasable as refusal:
            status = 404 if refusal.unknown else 409
            raise HTTPException(status_code=status, detail=str(refusal)) from None
        except KafkaError as error:
            raise HTTPException(status_code=503, detail="message queue unavailable, retry later") from error
        return {"ticket_id": released.ticket_id, "released_now": released.now, "actor": released.actor}

    return app
