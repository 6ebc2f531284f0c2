"""`POST /v1/forms/{form_id}`: a web form submission becomes an inbound message on Kafka.

Answered 202 `{"ticket_id", "message_id"}` only once Kafka acknowledged the message; 422 with field
errors for bad input, 415 for a body that is no form, 404 for an unknown form, 503 while Kafka or
Redis are down (RedisError is answered by the app's handler).

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
from services.intake.field_messages import field_errors, locale_of
from services.intake.form_body import FormRefused, submitted_fields
from services.intake.forms import FormSubmission, form_channel_key, to_inbound
from shared.config import DeskConfig

logger = logging.getLogger(__name__)

FORM_PATH = "/v1/forms/{form_id}"
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


def json_response(status: int, content: Any) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def form_route(intake: Intake, config: DeskConfig, metrics: FormMetrics) -> Route:
    async def submit_form(request: Request) -> Response:
        form_id: str = request.path_params["form_id"]
        idempotency_key = request.headers.get("idempotency-key")
        if config.forms and config.form(form_id) is None:
            metrics.forms.labels("unknown_form").inc()
            raise HTTPException(status_code=404, detail=f"unknown form {form_id!r}")
        if idempotency_key is not None and len(idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
            metrics.invalid.inc()
            message = f"String should have at most {MAX_IDEMPOTENCY_KEY_CHARS} characters"
            return json_response(422, {"detail": [_error("idempotency-key", message, "string_too_long")]})
        try:
            fields = await submitted_fields(request.headers.get("content-type"), request.stream())
        except FormRefused as refusal:
            metrics.invalid.inc()
            return json_response(refusal.status, {"detail": refusal.errors})
        accept_language = request.headers.get("accept-language")
        try:
            submission = FormSubmission.model_validate(fields)
        except ValidationError as error:
            metrics.invalid.inc()
            locale = locale_of(fields, accept_language, config.desk_locale)
            return json_response(422, {"detail": field_errors(error, locale)})

        resolution = await intake.resolve_ticket(form_channel_key(form_id, idempotency_key))
        ticket_id, message_id = resolution.ticket_id, str(resolution.message_id)
        inbound = to_inbound(
            form_id,
            submission,
            resolution=resolution,
            channel_message_id=idempotency_key or message_id,
            received_at=datetime.now(UTC),
            traceparent=request.headers.get("traceparent"),
            accept_language=accept_language,
        )
        started = time.perf_counter()
        try:
            await intake.publish(inbound)
        except KafkaError as error:
            metrics.forms.labels("broker_unavailable").inc()
            logger.error("publish failed", extra={"ticket_id": ticket_id, "error": repr(error)})
            raise HTTPException(status_code=503, detail="message queue unavailable, retry later") from error
        metrics.publish_seconds.observe(time.perf_counter() - started)
        metrics.accepted.inc()
        return json_response(202, {"ticket_id": ticket_id, "message_id": message_id})

    return Route(FORM_PATH, submit_form, methods=["POST"])
