"""Slack intake: messages in the shared (Slack Connect) support channels become tickets; agents' card
buttons, modals, thread replies and `/sb` become commands (services.intake.slack_interactivity).

`POST /v1/slack/events` is Bolt's single endpoint (events, interactivity and the slash command). The
HTTP layer bounds the body first (services.intake.body_limit); its request signature is checked
here, before Bolt or anything else sees the request, so a forged or replayed request gets 401
whatever Bolt does. A signed body that is no Slack payload (not a JSON object, objects where Slack
sends IDs ...) gets 400, and so does one that makes Bolt's own code fail: Bolt reads payload fields
without checking their types. Bolt runs with `process_before_response`: the Kafka publish finishes
before Slack gets its 200, and a failed publish answers 500 so that Slack delivers the event again.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import slack_bolt
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, EmailStr, SecretStr, TypeAdapter, ValidationError
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from services.intake.core import Intake
from services.intake.slack_files import FetchedFiles, SlackFiles
from services.intake.slack_interactivity import SlackAgents
from services.intake.slack_messages import customer_post
from shared.events import InboundMessage, ReplyRoute, Sender
from shared.settings import Settings
from shared.untrusted import InvalidJson, parse_json_object

logger = logging.getLogger(__name__)

USER_CACHE_SECONDS = 3600
# Slack waits 3 s for the answer to an event; what a message's files may take of that, counted from
# its arrival (users.info first). A file not fetched in time is named in the message instead.
ANSWER_SECONDS = 2.5
# Bolt reads some fields of a payload, and of the objects nested in it, without checking their
# types (slack_bolt.request.internals, its middleware and matchers): an ID is a string or an object
# with a string "id", `event` an object, these lists hold objects. Any other shape is refused first.
_NESTED_FIELDS = ("event", "message", "previous_message", "item", "assistant_thread", "view", "function_data")
_ID_FIELDS = ("user", "team", "channel", "enterprise")
_OBJECT_LIST_FIELDS = ("authorizations", "response_urls")
_BOLT_CODE = Path(slack_bolt.__file__).parent


class UnreadablePayload(ValueError):
    """A signed body that is no Slack payload; the message says why."""


def is_signed_by_slack(verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str]) -> bool:
    """True only for a v0 signature of exactly this body, made within 300 s of the verifier's clock."""
    signature = headers.get("x-slack-signature", "")
    timestamp = headers.get("x-slack-request-timestamp", "")
    if not (signature.isascii() and timestamp.isascii()):
        # Slack's signatures and timestamps are ASCII; the verifier's compare_digest raises on anything else.
        return False
    try:
        return verifier.is_valid_request(body, headers)
    except ValueError:
        # A timestamp that is no number, or a body that is no UTF-8: not something Slack signed.
        return False


def slack_payload(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The payload of a (signed, so UTF-8) body, read the way Bolt reads it; raises UnreadablePayload.

    Bolt's own rule (slack_bolt.request.internals.parse_body): JSON for `application/json` or a body
    starting with "{"; else a form, whose `payload` field, when present, is JSON (interactivity).
    """
    text = body.decode("utf-8")
    if not text:
        return {}
    try:
        if (content_type or "").split(";")[0] == "application/json" or text.startswith("{"):
            payload = parse_json_object(text)
        elif "payload" in text:
            form = dict(parse_qsl(text, keep_blank_values=True))
            payload = parse_json_object(form["payload"]) if "payload" in form else {}
        else:
            # A slash command: a form of strings, which Bolt reads as such.
            return dict(parse_qsl(text, keep_blank_values=True))
    except InvalidJson as error:
        raise UnreadablePayload(str(error)) from None
    if (problem := shape_problem(payload)) is not None:
        raise UnreadablePayload(problem)
    return payload


def shape_problem(payload: dict[str, Any], where: str = "") -> str | None:
    """What in a payload has a shape Slack never sends (and Bolt would trip over), or None."""
    if "event" in payload and not isinstance(payload["event"], dict):
        return f"{where}event is not an object"
    for key in _ID_FIELDS:
        value = payload.get(key)
        if not (value is None or isinstance(value, str) or (isinstance(value, dict) and _is_id(value.get("id")))):
            return f"{where}{key} is neither an ID nor an object with one"
    for key in _OBJECT_LIST_FIELDS:
        items = payload.get(key, [])
        if key == "authorizations" and items is None:
            continue
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            return f"{where}{key} is not a list of objects"
        for index, item in enumerate(items):
            if (problem := shape_problem(item, f"{where}{key}[{index}].")) is not None:
                return problem
    for key in _NESTED_FIELDS:
        if isinstance(payload.get(key), dict) and (problem := shape_problem(payload[key], f"{where}{key}.")):
            return problem
    if not where and payload.get("type") == "event_callback":
        if not isinstance(payload.get("event"), dict) or not isinstance(payload.get("event_id"), str):
            return "an event_callback without its event or event_id"
    return None


def _is_id(value: object) -> bool:
    return value is None or isinstance(value, str)


def raised_by_bolt(error: BaseException) -> bool:
    """True when the error arose in Bolt's own code (its innermost frame is Bolt's), not in ours."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).is_relative_to(_BOLT_CODE)


async def _on_bolt_error(error: Exception) -> BoltResponse | None:
    """Bolt's error handler: a payload Bolt cannot read is 400; anything else stays Bolt's 500, so that
    Slack delivers the event again (Kafka or Redis unavailable)."""
    if raised_by_bolt(error):
        logger.warning("Bolt could not read a signed Slack payload", exc_info=error)
        return BoltResponse(status=400, body="not a Slack payload Switchboard can read")
    logger.error("Slack event not taken, Slack will deliver it again", exc_info=error)
    return None


def slack_routes(intake: Intake, settings: Settings) -> APIRouter | None:
    """The Slack endpoint, or None (said at start-up) when the bot token or signing secret is absent."""
    token = _present(settings.slack_bot_token)
    signing_secret = _present(settings.slack_signing_secret)
    missing = [
        name
        for name, value in (
            ("SWITCHBOARD_SLACK_BOT_TOKEN", token),
            ("SWITCHBOARD_SLACK_SIGNING_SECRET", signing_secret),
        )
        if value is None
    ]
    if missing:
        logger.warning("Slack intake is off: %s not set", " and ".join(missing))
        return None

    verifier = SignatureVerifier(signing_secret)
    api_url = settings.slack_api_url
    # Slack waits 3 s for our answer; a slower Web API call is better given up (see _profile).
    client = AsyncWebClient(token=token, base_url=api_url, timeout=2)
    # Bolt's built-in middleware answers url_verification, and drops events of our own bot user: the
    # single-workspace authorization calls auth.test once per process and keeps the bot's user ID.
    bolt = AsyncApp(
        name="switchboard-intake",
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,
        # Bolt's own lines under a child logger, apart from ours.
        logger=logger.getChild("bolt"),
    )
    customer_messages = SlackCustomerMessages(intake, SlackFiles(intake.attachments, client, token, api_url))
    agents = SlackAgents(intake)
    agents.register(bolt)

    async def on_message(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        # Bolt runs the first listener that matches: one listener, and the channel says whose message it is.
        if agents.handles_channel(event.get("channel")):
            await agents.on_team_message(event, client)
        else:
            await customer_messages.on_message(body, event, client)

    bolt.event("message")(on_message)
    bolt.error(_on_bolt_error)
    handler = AsyncSlackRequestHandler(bolt)

    async def require_slack_signature(request: Request) -> None:
        if not is_signed_by_slack(verifier, await request.body(), request.headers):
            raise HTTPException(status_code=401, detail="missing, stale or invalid Slack signature")

    router = APIRouter()

    @router.post("/v1/slack/events", dependencies=[Depends(require_slack_signature)])
    async def slack_events(request: Request) -> Response:
        try:
            slack_payload(await request.body(), request.headers.get("content-type"))
        except UnreadablePayload as error:
            logger.warning("signed Slack request refused", extra={"reason": str(error)})
            raise HTTPException(status_code=400, detail=f"not a Slack payload: {error}") from None
        try:
            return await handler.handle(request)
        except Exception as error:
            # Before dispatching, Bolt builds its request (and context) from the payload, outside its error handler.
            if not raised_by_bolt(error):
                raise
            logger.warning("Bolt could not read a signed Slack payload", exc_info=error)
            raise HTTPException(status_code=400, detail="not a Slack payload Switchboard can read") from None

    return router


class SlackCustomerMessages:
    """The Bolt listener: customer posts in support channels → InboundMessage on Kafka."""

    def __init__(self, intake: Intake, files: SlackFiles):
        self.intake = intake
        self.files = files

    async def on_message(self, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        deadline = time.monotonic() + ANSWER_SECONDS
        post = customer_post(event, self.intake.config)
        if post is None:
            return
        profile = await self._profile(client, post.user_id)
        fetched = await self.files.fetch(post.files, deadline)
        # Slack retries an undelivered event with the same event_id: it names the channel message.
        resolution = await self.intake.resolve_ticket(
            f"slack:event:{body['event_id']}", lookup=[post.conversation], remember=[post.conversation]
        )
        # Slack's ts is when the event happened, and stays the same on every retry of it.
        received_at = datetime.fromtimestamp(float(post.ts), UTC)
        await self.intake.publish(
            InboundMessage.received(
                **resolution.fields(),
                channel="slack",
                kind="message" if post.edit_of is None else "edit",
                channel_message_id=post.channel_message_id,
                source=post.channel,
                sender=profile.sender,
                text=_with_files(post.text, fetched),
                attachments=fetched.stored,
                reply_route=ReplyRoute(channel="slack", address=post.channel, reply_to_id=post.thread_ts),
                edit_of=post.edit_of,
                received_at=received_at,
                language_hint=profile.locale,
            )
        )

    async def _profile(self, client: AsyncWebClient, user_id: str) -> SlackProfile:
        """The customer's name, profile email and locale from users.info, kept in Redis for an hour."""
        cache_key = f"sb:slack:profile:{user_id}"
        if (cached := await self.intake.redis.get(cache_key)) is not None:
            return SlackProfile.model_validate_json(cached)
        try:
            # The locale comes only when asked for (Slack API users.info, `include_locale`).
            user = (await client.users_info(user=user_id, include_locale=True))["user"]
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
            # The profile only enriches the message: without it (an external user Slack will not show,
            # a rate limit, a slow API) the Slack user ID still identifies the customer. Not cached,
            # so the customer's next message tries again.
            logger.warning("Slack users.info failed", extra={"slack_user_id": user_id, "error": repr(error)})
            return SlackProfile(sender=Sender(slack_user_id=user_id))
        profile = SlackProfile(sender=_sender_from_profile(user_id, user), locale=_locale(user))
        await self.intake.redis.set(cache_key, profile.model_dump_json(exclude_none=True), ex=USER_CACHE_SECONDS)
        return profile


class SlackProfile(BaseModel):
    """What a Slack user's profile tells about the customer: who they are, and their client's locale."""

    sender: Sender
    # An IETF tag such as "es-ES" (users.info `locale`): the router's first guess at their language.
    locale: str | None = None


def _locale(user: dict[str, Any]) -> str | None:
    locale = user.get("locale")
    return locale[:64] if isinstance(locale, str) and locale else None


def _with_files(text: str, fetched: FetchedFiles) -> str:
    """The post's text and a line for each file only referenced; the stored files' names when it has no text."""
    if not text and fetched.stored:
        text = " ".join(f"[file: {attachment.filename}]" for attachment in fetched.stored)
    return "\n".join(part for part in (text, *fetched.referenced) if part)


_email_adapter: TypeAdapter[str] = TypeAdapter(EmailStr)


def _sender_from_profile(user_id: str, user: dict[str, Any]) -> Sender:
    profile = user.get("profile", {})
    name = profile.get("real_name") or profile.get("display_name") or user.get("name")
    try:
        # Validated here, where the address enters (events only check its shape).
        email = _email_adapter.validate_python(profile["email"]) if profile.get("email") else None
        return Sender(slack_user_id=user_id, name=name, email=email)
    except ValidationError:
        # A profile address our schema refuses must not cost the customer's message.
        return Sender(slack_user_id=user_id, name=name)


def _present(secret: SecretStr | None) -> str | None:
    """The secret's value, or None when it is unset or blank (an empty environment variable)."""
    value = secret.get_secret_value().strip() if secret is not None else ""
    return value or None
