"""CSAT in: the rating page (`GET`/`POST /v1/csat/{token}`) and publishing every rating as a command.

The token (shared.csat) names the ticket and resolution, so the page needs no lookup; a forged or
damaged token is 404, one older than 14 days 410. A rating is answered only once Kafka has its
`RateTicket` on the commands topic (keyed by ticket ID); rating again sends the same command ID,
and the router keeps the first, so the customer is thanked either way.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from python_multipart.multipart import parse_options_header

from services.intake.core import PUBLISH_TIMEOUT_SECONDS, Intake
from services.intake.csat_page import PAGE_HEADERS, problem_page, rating_page, thanks_page
from services.intake.field_messages import page_texts
from services.intake.form_body import FormRefused, submitted_fields
from services.intake.guard import PublicGuard
from services.intake.ratings import FormProblems, Rating, rating_command, read_rating_form
from shared import i18n
from shared.csat import CsatSubject, CsatTokens, csat_secret
from shared.events import RateTicket
from shared.publisher import Outgoing
from shared.signed_links import TOKEN_VALID_SECONDS, InvalidToken
from shared.topics import COMMANDS, Topics

logger = logging.getLogger(__name__)

CSAT_PATH = "/v1/csat/{token}"


async def publish_rating(intake: Intake, rating: Rating) -> RateTicket:
    """Publishes the rating's `RateTicket`, keyed by ticket ID; returns once Kafka acknowledged it.

    Raises KafkaError (KafkaTimeoutError past PUBLISH_TIMEOUT_SECONDS): the customer's channel then
    asks them, or Telegram, to try again.
    """
    command = rating_command(rating, datetime.now(UTC))
    topic = Topics(intake.settings.topic_prefix).name(COMMANDS)
    await intake.publisher.publish(Outgoing.event(topic, command.ticket_id, command), timeout=PUBLISH_TIMEOUT_SECONDS)
    logger.info(
        "CSAT rating published",
        extra={"ticket_id": command.ticket_id, "resolution": command.resolution, "command_id": str(command.event_id)},
    )
    return command


def _html(content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status, headers=PAGE_HEADERS)


def _wants_json(request: Request) -> bool:
    media_type, _ = parse_options_header(request.headers.get("content-type") or "")
    return media_type == b"application/json"


def csat_routes(intake: Intake, guard: PublicGuard | None = None) -> APIRouter:
    """The rating page's routes; with `guard`, posts are rate limited (`limits.csat`: 429 with Retry-After)."""
    router = APIRouter()
    tokens = CsatTokens(csat_secret(intake.settings))

    def texts_for(request: Request) -> i18n.Texts:
        # `?lang=`: the link in the rating request names the ticket's language.
        return page_texts(request, intake.config.desk_locale)

    def subject_of(token: str, texts: i18n.Texts) -> CsatSubject | Response:
        try:
            return tokens.read(token)
        except InvalidToken as invalid:
            if invalid.expired:
                advice = texts.plural("csat.link.expired_advice", TOKEN_VALID_SECONDS // 86_400)
                return _html(problem_page(texts("csat.link.expired"), advice, texts), 410)
            advice = texts("csat.link.invalid_advice")
            return _html(problem_page(texts("csat.link.invalid"), advice, texts), 404)

    @router.get(CSAT_PATH, include_in_schema=False)
    async def rating_form(token: str, request: Request) -> Response:
        texts = texts_for(request)
        subject = subject_of(token, texts)
        if isinstance(subject, Response):
            return subject
        return _html(rating_page(subject.ticket_id, texts=texts))

    @router.post(CSAT_PATH)
    async def rate(token: str, request: Request) -> Response:
        """Records a rating: form-encoded (the page) or JSON `{"score": 1-5, "comment": "..."}`."""
        texts = texts_for(request)
        as_json = _wants_json(request)
        # Before the token is read: guessing tokens is limited too.
        if guard is not None:
            client = guard.client(request.client.host if request.client else None, request.headers)
            if limited := await guard.limit("csat", client):
                if as_json:
                    detail = [{"field": "(request)", "message": limited.message(texts), "type": "rate_limited"}]
                    return JSONResponse(status_code=429, content={"detail": detail}, headers=limited.headers())
                page = _html(problem_page(texts("refusal.wait"), limited.message(texts), texts), 429)
                page.headers.update(limited.headers())
                return page
        subject = subject_of(token, texts)
        if isinstance(subject, Response):
            return subject
        try:
            fields: dict[str, Any] = await submitted_fields(request.headers.get("content-type"), request.stream())
        except FormRefused as refusal:
            if as_json:
                return JSONResponse(status_code=refusal.status, content={"detail": refusal.errors(texts)})
            fields = {}
        form = read_rating_form(fields, texts)
        if isinstance(form, FormProblems):
            if as_json:
                details = [{"field": field, "message": message} for field, message in form.errors.items()]
                return JSONResponse(status_code=422, content={"detail": details})
            comment = fields.get("comment")
            page = rating_page(
                subject.ticket_id,
                score=fields.get("score"),
                comment=comment if isinstance(comment, str) else "",
                errors=form.errors,
                texts=texts,
            )
            return _html(page, 422)
        rating = Rating(subject.ticket_id, subject.resolution, form.score, form.comment)
        try:
            command = await publish_rating(intake, rating)
        except KafkaError as error:
            logger.error("CSAT rating not published", extra={"ticket_id": rating.ticket_id, "error": repr(error)})
            if as_json:
                return JSONResponse(status_code=503, content={"detail": texts("refusal.queue_unavailable")})
            return _html(problem_page(texts("csat.retry.title"), texts("csat.retry.advice"), texts), 503)
        if as_json:
            return JSONResponse(
                {"ticket_id": command.ticket_id, "resolution": command.resolution, "command_id": str(command.event_id)}
            )
        return _html(thanks_page(subject.ticket_id, texts))

    return router
