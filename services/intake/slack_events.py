"""Slack customer intake: messages in the shared (Slack Connect) support channels become tickets.

`POST /v1/slack/events` is Bolt's single endpoint. Its request signature is checked here, before Bolt
or anything else sees the request, so a forged or replayed request gets 401 whatever Bolt does. Bolt
runs with `process_before_response`: the Kafka publish finishes before Slack gets its 200, and a
failed publish answers 500 so that Slack delivers the event again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import SecretStr, ValidationError
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from services.intake.core import Intake
from shared.config import DeskConfig
from shared.events import InboundMessage, ReplyRoute, Sender
from shared.settings import Settings

logger = logging.getLogger(__name__)

USER_CACHE_SECONDS = 3600
# Subtypes that carry what a person wrote; every other one (joins, topic changes, ...) is channel noise.
PERSON_MESSAGE_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})


def is_signed_by_slack(verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str]) -> bool:
    """True only for a v0 signature of exactly this body, made within 300 s of the verifier's clock."""
    try:
        return verifier.is_valid_request(body, headers)
    except ValueError:
        # A timestamp that is no number, or a body that is no UTF-8: not something Slack signed.
        return False


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
    # Slack waits 3 s for our answer; a slower Web API call is better given up (see _sender).
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
    customer_messages = SlackCustomerMessages(intake)
    bolt.event("message")(customer_messages.on_message)
    handler = AsyncSlackRequestHandler(bolt)

    async def require_slack_signature(request: Request) -> None:
        if not is_signed_by_slack(verifier, await request.body(), request.headers):
            raise HTTPException(status_code=401, detail="missing, stale or invalid Slack signature")

    router = APIRouter()

    @router.post("/v1/slack/events", dependencies=[Depends(require_slack_signature)])
    async def slack_events(request: Request) -> Response:
        return await handler.handle(request)

    return router


@dataclass(frozen=True)
class CustomerPost:
    """What a customer wrote (or rewrote) in a support channel."""

    channel: str
    # The Slack ts of this event's message: the message itself, or the edit.
    ts: str
    # The ts of the thread's first message: the conversation the post belongs to.
    thread_ts: str
    user_id: str
    text: str
    # For edits: the channel message ID of the message rewritten.
    edit_of: str | None

    @property
    def channel_message_id(self) -> str:
        return f"{self.channel}:{self.ts}"

    @property
    def conversation(self) -> str:
        return f"slack:{self.channel}:{self.thread_ts}"


def customer_post(event: dict[str, Any], config: DeskConfig) -> CustomerPost | None:
    """The customer post a `message` event carries; None, logged at debug, for any other message."""
    channel = event.get("channel")
    subtype = event.get("subtype")
    if channel not in config.slack_support_channels:
        return _ignored("not a support channel", event)
    if subtype == "message_deleted":
        # The ticket keeps what the customer first wrote: it is the audit trail.
        return _ignored("deleted in Slack; the ticket keeps the original", event)
    if subtype == "message_changed":
        message, previous = event["message"], event.get("previous_message", {})
        if message.get("text") == previous.get("text"):
            # Slack also reports link previews and thread replies as changes of the message.
            return _ignored("changed without new text", event)
        edit_of: str | None = f"{channel}:{message['ts']}"
    elif subtype in PERSON_MESSAGE_SUBTYPES:
        message, edit_of = event, None
    else:
        return _ignored("not a person's message", event)
    if message.get("bot_id") or message.get("subtype") == "bot_message":
        return _ignored("written by a bot", event)
    user_id = message.get("user")
    # Agents answer through Switchboard; what they post in the shared channel themselves is not a customer's.
    if user_id is None or user_id in {agent.slack_user_id for agent in config.agents}:
        return _ignored("not written by a customer", event)
    return CustomerPost(
        channel=channel,
        ts=event["ts"],
        thread_ts=message.get("thread_ts") or message["ts"],
        user_id=user_id,
        text=message.get("text", ""),
        edit_of=edit_of,
    )


def _ignored(reason: str, event: dict[str, Any]) -> None:
    logger.debug(
        "Slack message ignored: %s",
        reason,
        extra={
            "slack_channel": event.get("channel"),
            "slack_subtype": event.get("subtype"),
            "slack_ts": event.get("ts"),
        },
    )


class SlackCustomerMessages:
    """The Bolt listener: customer posts in support channels → InboundMessage on Kafka."""

    def __init__(self, intake: Intake):
        self.intake = intake

    async def on_message(self, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        post = customer_post(event, self.intake.config)
        if post is None:
            return
        sender = await self._sender(client, post.user_id)
        # Slack retries an undelivered event with the same event_id: it names the channel message.
        channel_key = f"slack:event:{body['event_id']}"
        message_id = self.intake.message_id(channel_key)
        ticket_id = await self.intake.resolve_ticket(
            channel_key, lookup=[post.conversation], remember=[post.conversation]
        )
        # Slack's ts is when the event happened, and stays the same on every retry of it.
        received_at = datetime.fromtimestamp(float(post.ts), UTC)
        await self.intake.publish(
            InboundMessage.received(
                message_id=message_id,
                ticket_id=ticket_id,
                channel="slack",
                kind="message" if post.edit_of is None else "edit",
                channel_message_id=post.channel_message_id,
                source=post.channel,
                sender=sender,
                # Slack markup stays as written; it is escaped again wherever agents see it.
                text=post.text,
                reply_route=ReplyRoute(channel="slack", address=post.channel, reply_to_id=post.thread_ts),
                edit_of=post.edit_of,
                received_at=received_at,
            )
        )

    async def _sender(self, client: AsyncWebClient, user_id: str) -> Sender:
        """The customer's name and profile email from users.info, kept in Redis for an hour."""
        cache_key = f"sb:slack:user:{user_id}"
        if (cached := await self.intake.redis.get(cache_key)) is not None:
            return Sender.model_validate_json(cached)
        try:
            user = (await client.users_info(user=user_id))["user"]
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
            # The profile only enriches the message: without it (an external user Slack will not show,
            # a rate limit, a slow API) the Slack user ID still identifies the customer. Not cached,
            # so the customer's next message tries again.
            logger.warning("Slack users.info failed", extra={"slack_user_id": user_id, "error": repr(error)})
            return Sender(slack_user_id=user_id)
        sender = _sender_from_profile(user_id, user)
        await self.intake.redis.set(cache_key, sender.model_dump_json(exclude_none=True), ex=USER_CACHE_SECONDS)
        return sender


def _sender_from_profile(user_id: str, user: dict[str, Any]) -> Sender:
    profile = user.get("profile", {})
    name = profile.get("real_name") or profile.get("display_name") or user.get("name")
    try:
        return Sender(slack_user_id=user_id, name=name, email=profile.get("email"))
    except ValidationError:
        # A profile address our schema refuses must not cost the customer's message.
        return Sender(slack_user_id=user_id, name=name)


def _present(secret: SecretStr | None) -> str | None:
    """The secret's value, or None when it is unset or blank (an empty environment variable)."""
    value = secret.get_secret_value().strip() if secret is not None else ""
    return value or None
