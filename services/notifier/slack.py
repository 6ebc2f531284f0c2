"""Posting to Slack (chat.postMessage): one message per delivery, or one digest after a hold.

Slack allows about one message per second per channel, with short bursts (its "special" rate
tier for chat.postMessage); past that it answers HTTP 429 with Retry-After, which becomes
`RateLimited` so the scheduler holds that channel alone. Each message carries its delivery key in
Slack's message metadata, so a post whose sender died mid-call can be found instead of repeated.
https://api.slack.com/methods/chat.postMessage, https://api.slack.com/metadata
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from services.notifier.deliveries import Sent
from services.notifier.errors import RateLimited, Refused
from services.notifier.plan import Delivery
from services.notifier.slack_text import escape

logger = logging.getLogger(__name__)

# Slack errors that retrying cannot fix: the delivery fails at once (and goes to the DLQ).
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "msg_too_long",
        "no_text",
        "restricted_action",
        "user_not_found",
    }
)
METADATA_EVENT_TYPE = "switchboard_delivery"
# A digest lists what piled up; each item is cut to stay well inside Slack's 40,000 characters.
DIGEST_ITEM_CHARS = 600
DIGEST_ITEMS = 50
# Connections kept open to Slack at most (the scheduler makes at most this many calls at once anyway).
CONNECTIONS = 64


class SlackTransport:
    def __init__(self, token: str | None, api_url: str):
        self.client = (
            AsyncWebClient(
                token=token,
                base_url=api_url,
                timeout=15,
                retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=2)],
            )
            if token
            else None
        )
        if self.client is None:
            logger.warning("Slack is off: SWITCHBOARD_SLACK_BOT_TOKEN is not set; posts are logged")
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def _connected(self) -> AsyncWebClient:
        """The client with one HTTP session kept open (slack_sdk opens a connection per call otherwise)."""
        assert self.client is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS), timeout=aiohttp.ClientTimeout(total=15)
            )
            self.client.session = self._session
        return self.client

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, delivery: Delivery, thread_ts: str | None) -> Sent | None:
        return await self._post(delivery.address, delivery.text, thread_ts, delivery.key)

    async def send_digest(self, target: str, deliveries: list[Delivery]) -> Sent | None:
        channel = target.partition(":")[2]
        lines = [f":hourglass_flowing_sand: Slack held this channel back; {len(deliveries)} updates arrived meanwhile:"]
        for delivery in deliveries[:DIGEST_ITEMS]:
            text = delivery.text if len(delivery.text) <= DIGEST_ITEM_CHARS else f"{delivery.text[:DIGEST_ITEM_CHARS]}…"
            lines.append(f"• *{escape(delivery.ticket_id)}* {text}")
        if len(deliveries) > DIGEST_ITEMS:
            lines.append(f"… and {len(deliveries) - DIGEST_ITEMS} more; see each ticket")
        return await self._post(channel, "\n".join(lines), None, f"digest:{deliveries[0].key}")

    async def find_sent(self, delivery: Delivery, thread_ts: str | None, since: float) -> str | None:
        """The ts of the message carrying `delivery.key` in its metadata, posted after `since` (Unix s).

        conversations.history lists only a channel's top-level messages, so a thread post is looked
        for in conversations.replies; a DM is posted to the user's ID but read by the conversation
        ID conversations.open answers. Every page is read: a busy channel has more than one. A
        rate-limited look-up raises (it is tried again); any other refusal is logged and answers None,
        so the delivery is made again rather than lost.
        https://api.slack.com/methods/conversations.history, https://api.slack.com/methods/conversations.replies
        """
        query = {"oldest": f"{since:.6f}", "include_all_metadata": True, "limit": 200}
        try:
            channel = delivery.address
            if _is_user_id(channel):
                channel = (await self._connected().conversations_open(users=channel))["channel"]["id"]
            if thread_ts:
                pages = await self._connected().conversations_replies(channel=channel, ts=thread_ts, **query)
            else:
                pages = await self._connected().conversations_history(channel=channel, **query)
            async for page in pages:
                for message in page.get("messages", []):
                    metadata = message.get("metadata") or {}
                    if metadata.get("event_payload", {}).get("key") == delivery.key:
                        return message.get("ts")
        except SlackApiError as error:
            if error.response.status_code == 429:
                # Looked for again after a backoff (a transient failure): posting instead could repeat it.
                raise
            logger.warning("could not look for an earlier post", extra={"key": delivery.key, "error": repr(error)})
        return None

    async def _post(self, channel: str, text: str, thread_ts: str | None, key: str) -> Sent:
        try:
            response = await self._connected().chat_postMessage(
                channel=channel,
                text=text,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": key}},
            )
        except SlackApiError as error:
            if error.response.status_code == 429:
                raise RateLimited(_retry_after(error.response.headers)) from error
            code = error.response.get("error", "")
            if code in PERMANENT_ERRORS:
                raise Refused(f"Slack refused chat.postMessage to {channel}: {code}") from error
            raise
        return Sent(response["ts"], datetime.now(UTC))


def _is_user_id(conversation: str) -> bool:
    # Users are U… (W… in Enterprise Grid); conversations are C…, G… and D….
    return conversation[:1] in ("U", "W")


def _retry_after(headers: object) -> float:
    """Slack's Retry-After (seconds), whatever the case of the header's name."""
    for name, value in dict(headers or {}).items():
        if str(name).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return 1.0
