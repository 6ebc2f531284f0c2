"""`POST /v1/forms/{form_id}`: a web form submission becomes an inbound message on Kafka.

Answered 202 `{"ticket_id", "message_id"}` only once Kafka acknowledged the message; 422 with field
errors for bad input, 415 for a body that is no form, 404 for an unknown form, 429 with Retry-After
over a rate limit (`limits.form`), 503 while Kafka, Redis or the captcha provider are down (RedisError
is answered by the app's handler). Field errors, the 429 and the 503s of the captcha provider and of Kafka
are worded in the customer's language (services.intake.field_messages `locale_of`); the 404, the
Idempotency-Key's 422 and a body that cannot be read (415, 422), answered before the form's `language` is
known, in the browser's (`header_texts`).

A post judged spam (services.intake.spam) is answered the same 202, with a ticket ID reserved for it,
and kept in quarantine instead of published: no ticket, no announcement, no acknowledgement, until an
agent releases it (services.intake.release), which makes that very ticket ID real.

The busiest endpoint, so a plain Starlette route: FastAPI's parameter injection cost more CPU per
form than validating the form itself.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.intake.core import Intake
from services.intake.field_messages import field_errors, header_texts, locale_of
from services.intake.form_body import FormRefused, submitted_fields
from services.intake.forms import FormSubmission, form_channel_key, quarantined_form, to_inbound
from services.intake.guard import CaptchaUnavailable, PublicGuard
from services.intake.limits import contact_identities
from services.intake.spam import Missing, Suspect, split_guard_fields
from shared import i18n
from shared.config import DeskConfig

logger = logging.getLogger(__name__)

FORM_PATH = "/v1/forms/{form_id}"
STAMP_PATH = "/v1/forms/{form_id}/stamp"
# An Idempotency-Key names one message; a longer one is no key a client made up on purpose.
MAX_IDEMPOTENCY_KEY_CHARS = 255


class FormMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.forms = Counter(
            "switchboard_intake_forms_total",
            "Form submissions by outcome",
            ["outcome"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "switchboard_intake_publish_seconds",
            "Time for the broker to acknowledge a message",
            registry=registry,
        )
        # Looked up once: every submission counts in one of these.
        self.accepted = self.forms.labels("accepted")
        self.invalid = self.forms.labels("invalid")


def _error(field: str, message: str, kind: str) -> dict[str, str]:
    return {"field": field, "message": message, "type": kind}


def json_response(status: int, content: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


def unknown_form(request: Request, config: DeskConfig, form_id: str) -> HTTPException:
    """The 404 for a form the config does not have, `detail` in the reader's language."""
    detail = header_texts(request, config.desk_locale)("refusal.unknown_form", form=repr(form_id))
    return HTTPException(status_code=404, detail=detail)


def stamp_route(config: DeskConfig, guard: PublicGuard) -> Route:
    """`GET /v1/forms/{form_id}/stamp`: what the page sends back with the form (services.intake.spam):
    `{"stamp", "min_fill_ms", "captcha": {"provider", "site_key"} | null}`; 404 for an unknown form."""

    async def form_stamp(request: Request) -> Response:
        form_id: str = request.path_params["form_id"]
        if config.forms and config.form(form_id) is None:
            raise unknown_form(request, config, form_id)
        captcha = config.spam.captcha
        body = {
            "stamp": guard.stamps.issue(form_id, datetime.now(UTC)),
            "min_fill_ms": int(config.spam.min_fill_time.total_seconds() * 1000),
            "captcha": {"provider": captcha.provider, "site_key": captcha.site_key} if captcha else None,
        }
        return Response(orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})

    return Route(STAMP_PATH, form_stamp, methods=["GET"])


def form_route(intake: Intake, config: DeskConfig, metrics: FormMetrics, guard: PublicGuard) -> Route:
    async def submit_form(request: Request) -> Response:
        form_id: str = request.path_params["form_id"]
        idempotency_key = request.headers.get("idempotency-key")
        if config.forms and config.form(form_id) is None:
            metrics.forms.labels("unknown_form").inc()
            raise unknown_form(request, config, form_id)
        if idempotency_key is not None and len(idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
            metrics.invalid.inc()
            # Worded as a form field's too-long value (services.intake.field_messages).
            message = header_texts(request, config.desk_locale).plural("error.max_length", MAX_IDEMPOTENCY_KEY_CHARS)
            return json_response(422, {"detail": [_error("idempotency-key", message, "string_too_long")]})
        try:
            fields = await submitted_fields(request.headers.get("content-type"), request.stream())
        except FormRefused as refusal:
            metrics.invalid.inc()
            # A body that cannot be read has no `language` field to go by.
            return json_response(refusal.status, {"detail": refusal.errors(header_texts(request, config.desk_locale))})
        accept_language = request.headers.get("accept-language")
        fields, guard_fields = split_guard_fields(fields)

        def reader_locale() -> str:
            # Only refusals need it: a submission let through is not answered in words.
            return locale_of(fields, accept_language, config.desk_locale)

        try:
            submission = FormSubmission.model_validate(fields)
        except ValidationError as error:
            metrics.invalid.inc()
            return json_response(422, {"detail": field_errors(error, reader_locale())})

        client = guard.client(request.client.host if request.client else None, request.headers)
        identities = contact_identities(submission.email, submission.phone)
        if limited := await guard.limit("form", client, identities=identities, form_id=form_id):
            metrics.forms.labels("limited").inc()
            error = _error("(request)", limited.message(i18n.texts(reader_locale())), "rate_limited")
            return json_response(429, {"detail": [error]}, headers=limited.headers())
        now = datetime.now(UTC)
        try:
            verdict = await guard.judge_form(form_id, guard_fields, client, now)
        except CaptchaUnavailable as error:
            metrics.forms.labels("captcha_unavailable").inc()
            logger.error("captcha not verified", extra={"error": str(error)})
            detail = i18n.texts(reader_locale())("refusal.captcha_unavailable")
            raise HTTPException(status_code=503, detail=detail) from error
        if isinstance(verdict, Missing):
            metrics.invalid.inc()
            text = i18n.texts(reader_locale())(verdict.text_id)
            return json_response(422, {"detail": [_error(verdict.field, text, verdict.kind)]})

        resolution = await intake.resolve_ticket(form_channel_key(form_id, idempotency_key))
        ticket_id, message_id = resolution.ticket_id, str(resolution.message_id)
        inbound = to_inbound(
            form_id,
            submission,
            resolution=resolution,
            channel_message_id=idempotency_key or message_id,
            received_at=now,
            traceparent=request.headers.get("traceparent"),
            accept_language=accept_language,
        )
        started = time.perf_counter()
        try:
            if isinstance(verdict, Suspect):
                original = intake.attachments.save(
                    inbound.model_dump_json().encode(),
                    filename="inbound-message.json",
                    content_type="application/json",
                    enforce_policy=False,
                )
                await intake.quarantine(quarantined_form(inbound, verdict, original))
                metrics.forms.labels("quarantined").inc()
                return json_response(202, {"ticket_id": ticket_id, "message_id": message_id})
            await intake.publish(inbound)
        except KafkaError as error:
            metrics.forms.labels("broker_unavailable").inc()
            logger.error("publish failed", extra={"ticket_id": ticket_id, "error": repr(error)})
            detail = i18n.texts(reader_locale())("refusal.queue_unavailable")
            raise HTTPException(status_code=503, detail=detail) from error
        metrics.publish_seconds.observe(time.perf_counter() - started)
        metrics.accepted.inc()
        return json_response(202, {"ticket_id": ticket_id, "message_id": message_id})

    return Route(FORM_PATH, submit_form, methods=["POST"])
