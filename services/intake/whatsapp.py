"""WhatsApp Cloud API: the webhook in (customer messages become ticket messages; statuses of what we sent
are recorded on the ticket).

`GET /v1/whatsapp/webhook` answers Meta's verification request: `hub.mode=subscribe` with our verify
token gets `hub.challenge` echoed, anything else 403. `POST /v1/whatsapp/webhook` checks
`X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret) before anything else: 401 when
missing, 403 when wrong, and nothing is read or published. Then each customer message (normalised by
services.intake.whatsapp_content; media fetched through the Graph API media endpoint and stored under the
attachment policy) becomes one `InboundMessage`, idempotent by its wamid; one open ticket per customer
phone number (a closed one gets a follow-up ticket, as on every channel). Each status of a message we sent
becomes a `message.status_reported` on its ticket (the ticket is named by what we sent with the message).
Meta redelivers a webhook until it gets a 200, so the 200 comes only after Kafka has everything; a
failure to publish or to fetch media answers 503.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from uuid import UUID

import httpx
from aiokafka.errors import KafkaError
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse

from services.intake.core import PUBLISH_TIMEOUT_SECONDS, Intake, with_refusals
from services.intake.ticket_ids import Resolution
from services.intake.whatsapp_content import (
    SIGNATURE_HEADER,
    CustomerMessage,
    MediaFile,
    StatusUpdate,
    challenge_answer,
    read_webhook,
    valid_signature,
)
from shared.attachments import AttachmentRejected
from shared.conversations import whatsapp_conversation
from shared.events import Attachment, InboundMessage, MessageStatusReported, ReplyRoute
from shared.ids import derived_id, is_ticket_id
from shared.publisher import Outgoing
from shared.read_model import ReadModel
from shared.settings import Settings
from shared.topics import TICKETS, Topics
from shared.untrusted import InvalidJson, parse_json
from shared.whatsapp_graph import GraphError, WhatsAppGraph

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/v1/whatsapp/webhook"


def to_inbound(
    message: CustomerMessage, *, resolution: Resolution, attachments: list[Attachment], refusals: list[str]
) -> InboundMessage:
    return InboundMessage.received(
        **resolution.fields(),
        channel="whatsapp",
        channel_message_id=message.wamid,
        source="whatsapp",
        sender=message.sender,
        subject=None,
        text=with_refusals(message.text, refusals),
        attachments=attachments,
        reply_route=ReplyRoute(
            channel="whatsapp", address=message.wa_id, reply_to_id=message.wamid, customer_wrote_at=message.sent_at
        ),
        received_at=message.sent_at,
    )


def status_event(update: StatusUpdate) -> MessageStatusReported | None:
    """The status as its ticket records it, or None when it names no ticket of ours (a message sent by
    another application on the same number)."""
    tracking = update.tracking
    if tracking is None or not is_ticket_id(tracking.ticket_id):
        return None
    try:
        message_id = UUID(tracking.message_id) if tracking.message_id else None
        return MessageStatusReported(
            event_id=derived_id("whatsapp-status", update.wamid, update.status),
            occurred_at=update.at,
            ticket_id=tracking.ticket_id,
            channel="whatsapp",
            external_id=update.wamid,
            message_id=message_id,
            purpose=tracking.purpose,
            status=update.status,
            status_at=update.at,
            error=update.error,
        )
    except ValueError:
        return None


def whatsapp_routes(intake: Intake, settings: Settings) -> APIRouter | None:
    """The webhook's router, or None (and a log line saying why) when WhatsApp is not configured."""
    if missing := settings.whatsapp_missing():
        logger.warning("WhatsApp is off: %s not set", ", ".join(missing))
        return None
    assert settings.whatsapp_verify_token and settings.whatsapp_app_secret and settings.whatsapp_phone_number_id
    verify_token = settings.whatsapp_verify_token.get_secret_value()
    app_secret = settings.whatsapp_app_secret.get_secret_value()
    phone_number_id = settings.whatsapp_phone_number_id
    graph = WhatsAppGraph(settings)
    tickets_topic = Topics(settings.topic_prefix).name(TICKETS)
    read_model = ReadModel(intake.redis)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        try:
            yield
        finally:
            await graph.aclose()

    router = APIRouter(lifespan=lifespan)

    @router.get(WEBHOOK_PATH)
    async def verify(request: Request) -> Response:
        challenge = challenge_answer(request.query_params, verify_token)
        if challenge is None:
            raise HTTPException(status_code=403, detail="not a subscription with our verify token")
        return PlainTextResponse(challenge)

    @router.post(WEBHOOK_PATH)
    async def webhook(request: Request) -> Response:
        body = await request.body()
        # Before anything else: only Meta knows the app secret, and nobody else may make us act.
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise HTTPException(status_code=401, detail=f"missing {SIGNATURE_HEADER}")
        if not valid_signature(body, signature, app_secret):
            raise HTTPException(status_code=403, detail=f"wrong {SIGNATURE_HEADER}")
        try:
            payload = parse_json(body)
        except InvalidJson as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        read = read_webhook(payload, phone_number_id)
        for reason in read.ignored:
            logger.info("WhatsApp webhook part ignored", extra={"reason": reason})
        try:
            for message in read.messages:
                await accept(message)
            events = [event for update in read.statuses if (event := status_event(update)) is not None]
            for event in events:
                await intake.publisher.publish(
                    Outgoing.event(tickets_topic, event.ticket_id, event), timeout=PUBLISH_TIMEOUT_SECONDS
                )
            await read_model.apply(events)
        except (KafkaError, httpx.TransportError, GraphError) as error:
            # GraphError: only trouble on Graph's side (or its rate limit) gets here, see store_files.
            logger.error("WhatsApp webhook not taken, Meta will redeliver", extra={"error": repr(error)})
            raise HTTPException(status_code=503, detail="temporarily unavailable, retry later") from error
        return Response(status_code=200)

    async def accept(message: CustomerMessage) -> None:
        attachments, refusals = await store_files(message.files)
        conversation = whatsapp_conversation(message.wa_id)
        resolution = await intake.resolve_ticket(
            f"whatsapp:message:{message.wamid}", lookup=[conversation], remember=[conversation]
        )
        await intake.publish(to_inbound(message, resolution=resolution, attachments=attachments, refusals=refusals))

    async def store_files(files: tuple[MediaFile, ...]) -> tuple[list[Attachment], list[str]]:
        """The files stored, and why the others were refused. Network and transient Graph errors propagate."""
        stored, refusals = [], []
        for file in files:
            try:
                media = await graph.media(file.media_id)
                content_type = media.mime_type or file.content_type
                # Checked before downloading, with the size WhatsApp announced: no point fetching a refusal.
                intake.attachments.check(file.filename, content_type, media.size or 0)
                content = await graph.download(media.url, intake.attachments.max_bytes)
                if content is None:
                    raise AttachmentRejected(
                        f"{file.filename or file.label} is larger than {intake.attachments.max_bytes} bytes"
                    )
                stored.append(intake.attachments.save(content, filename=file.filename, content_type=content_type))
            except AttachmentRejected as rejection:
                refusals.append(str(rejection))
            except GraphError as error:
                if error.transient or error.rate_limited:
                    raise
                # An expired or unknown media ID: no redelivery can fetch it.
                refusals.append(f"{file.filename or file.label}: WhatsApp did not give the file ({error})")
        return stored, refusals

    return router
