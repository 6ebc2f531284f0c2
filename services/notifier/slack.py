"""Posting to Slack at most once per notification, honouring Slack's rate limits."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from shared.broker import PermanentFailure

logger = logging.getLogger(__name__)

# Slack errors that retrying cannot fix: the notification goes to the dead-letter topic at once.
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
POSTED_TTL_SECONDS = 30 * 24 * 3600


class SlackPoster:
    def __init__(self, redis: Redis, token: str | None, api_url: str):
        self.redis = redis
        self.client = (
            AsyncWebClient(
                token=token,
                base_url=api_url,
                timeout=15,
                retry_handlers=[
                    AsyncConnectionErrorRetryHandler(max_retry_count=2),
                    # Waits Retry-After itself; a longer outage is retried by the consumer policy.
                    AsyncRateLimitErrorRetryHandler(max_retry_count=3),
                ],
            )
            if token
            else None
        )
        if self.client is None:
            logger.warning("Slack is off: SWITCHBOARD_SLACK_BOT_TOKEN is not set; posts are logged")

    async def post(self, idempotency_key: str, channel: str, text: str, thread_ts: str | None = None) -> str | None:
        """Post once per key; returns the message's ts (None when Slack is off)."""
        posted_key = f"sb:notifier:posted:{idempotency_key}"
        if (ts := await self.redis.get(posted_key)) is not None:
            return ts
        if self.client is None:
            logger.info("would post to Slack", extra={"channel": channel, "text": text})
            return None
        try:
            response = await self.client.chat_postMessage(
                channel=channel,
                text=text,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as error:
            code = error.response.get("error", "")
            if code in PERMANENT_ERRORS:
                raise PermanentFailure(f"Slack refused chat.postMessage to {channel}: {code}") from error
            raise
        ts = response["ts"]
        await self.redis.set(posted_key, ts, ex=POSTED_TTL_SECONDS)
        return ts
