"""Slack: posts (chat.postMessage) one per delivery or one digest after a hold, the ticket cards and their
updates in place (chat.update), ephemeral messages (chat.postEphemeral) and reactions (reactions.add).

Slack allows about one message per second per channel, with short bursts (its "special" rate
tier for chat.postMessage); past that it answers HTTP 429 with Retry-After, which becomes
`RateLimited` so the scheduler holds that channel alone. Each message carries its delivery key in
Slack's message metadata, so a post whose sender died mid-call can be found instead of repeated.
https://api.slack.com/methods/chat.postMessage, https://api.slack.com/metadata
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from services.notifier import contact_suggestions, csat_asks
from services.notifier.cards import Card
from services.notifier.deliveries import Sent, Skipped
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
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "invalid_blocks",
        "user_not_in_channel",
    }
)
# Deliveries that are looked for in the channel's history after a sender died mid-call; the others are
# made again (an update or a reaction changes nothing the second time; an ephemeral message is never stored).
FINDABLE = frozenset(
    {"acknowledgement", "announcement", "assignment_dm", "mirror", "reply", "sla", "csat", "suggestions"}
)
# (ticket ID, the target of a card posted before or None) → the card now, the digest of what that card shows.
CardSource = Callable[[str, str | None], Awaitable[tuple[Card | None, str | None]]]
METADATA_EVENT_TYPE = "switchboard_delivery"
# A digest lists what piled up; each item is cut to stay well inside Slack's 40,000 characters.
DIGEST_ITEM_CHARS = 600
DIGEST_ITEMS = 50
# Connections kept open to Slack at most (the scheduler makes at most this many calls at once anyway).
CONNECTIONS = 64


class SlackTransport:
    def __init__(self, token: str | None, api_url: str, cards: CardSource | None = None):
        """`cards`: the ticket's card now and what a card posted shows (None: cards are sent as their plain text)."""
        self.cards = cards
        # The bot's DM conversation with each user (conversations.open answers the same one each time).
        self._dms: dict[str, str] = {}
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
                connector=aiohttp.TCPConnector(limit=CONNECTIONS),
                timeout=aiohttp.ClientTimeout(total=15),
                # Every card's blocks are encoded: orjson does it several times faster than json.dumps.
                json_serialize=_json,
            )
            self.client.session = self._session
        return self.client

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, delivery: Delivery, thread_ts: str | None) -> Sent | Skipped | None:
        match delivery.purpose:
            case "announcement" if thread_ts is not None:
                # Announced before (a reassignment): the card is updated in place and stays the thread.
                shown, _ = await self._update_card(delivery, thread_ts)
                return Sent(thread_ts, datetime.now(UTC), (f"slack:{delivery.address}:{thread_ts}",), shown=shown)
            case "announcement" | "assignment_dm":
                card = (await self.cards(delivery.ticket_id, None))[0] if self.cards else None
                text, blocks = (card.text, card.blocks) if card else (delivery.text, None)
                sent = await self._post(delivery.address, text, None, delivery.key, blocks)
                shown = card.digest if card else None
                if delivery.purpose == "announcement":
                    # The card is the ticket's thread: agents' replies in it find the ticket (shared.conversations).
                    return Sent(
                        sent.external_id, sent.at, (f"slack:{delivery.address}:{sent.external_id}",), shown=shown
                    )
                return Sent(sent.external_id, sent.at, shown=shown)
            case "card_update":
                return (await self._update_card(delivery, thread_ts))[1]
            case "rejection" if delivery.user:
                await self._api("chat.postEphemeral", channel=delivery.address, user=delivery.user, text=delivery.text)
                return Sent(None, datetime.now(UTC))
            case "reaction":
                await self._react(delivery)
                return Sent(delivery.message_ts, datetime.now(UTC))
            case "merge_suggestion" if delivery.contacts is not None:
                blocks = contact_suggestions.slack_blocks(delivery.ticket_id, delivery.text, delivery.contacts)
                return await self._post(delivery.address, delivery.text, thread_ts, delivery.key, blocks)
            case "csat" if delivery.csat is not None:
                blocks = csat_asks.slack_blocks(delivery.csat, delivery.text)
                return await self._post(delivery.address, delivery.text, thread_ts, delivery.key, blocks)
        return await self._post(delivery.address, delivery.text, thread_ts, delivery.key)

    async def _update_card(self, delivery: Delivery, card_ts: str | None) -> tuple[str | None, Sent | Skipped | None]:
        """Shows the ticket as it is now on its card in `delivery.target`, with no call when the card shows that
        already. Returns the digest of what the card shows then (None: unknown) and the outcome."""
        card, shown = await self.cards(delivery.ticket_id, delivery.target) if self.cards else (None, None)
        if card is None or card_ts is None:
            return shown, None
        digest = card.digest
        if digest == shown:
            return digest, Skipped("the card shows this already")
        channel = delivery.address
        if _is_user_id(channel):
            channel = await self._dm(channel)
        await self._api("chat.update", channel=channel, ts=card_ts, text=card.text, blocks=card.blocks)
        return digest, Sent(card_ts, datetime.now(UTC), shown=digest)

    async def _react(self, delivery: Delivery) -> None:
        try:
            await self._api(
                "reactions.add", channel=delivery.address, timestamp=delivery.message_ts, name=delivery.reaction
            )
        except SlackApiError as error:
            # Added before (a redelivery, or a sender that died after the call): that is the outcome wanted.
            if error.response.get("error") != "already_reacted":
                raise

    async def _dm(self, user_id: str) -> str:
        if (channel := self._dms.get(user_id)) is None:
            channel = (await self._api("conversations.open", users=user_id))["channel"]["id"]
            self._dms[user_id] = channel
        return channel

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
        if delivery.purpose not in FINDABLE:
            return None
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

    async def _post(
        self, channel: str, text: str, thread_ts: str | None, key: str, blocks: list[dict[str, Any]] | None = None
    ) -> Sent:
        response = await self._api(
            "chat.postMessage",
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            metadata={"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": key}},
        )
        return Sent(response["ts"], datetime.now(UTC))

    async def _api(self, method: str, **args: Any) -> Any:
        """Calls Web API `method` ("chat.update") with `args` (None ones left out); HTTP 429 raises RateLimited,
        errors retrying cannot fix raise Refused, anything else propagates (it is retried)."""
        call = getattr(self._connected(), method.replace(".", "_"))
        try:
            return await call(**{name: value for name, value in args.items() if value is not None})
        except SlackApiError as error:
            if error.response.status_code == 429:
                raise RateLimited(_retry_after(error.response.headers)) from error
            code = error.response.get("error", "")
            if code in PERMANENT_ERRORS:
                target = args.get("channel") or args.get("users")
                raise Refused(f"Slack refused {method} to {target}: {code}") from error
            raise


def _json(document: Any) -> str:
    return orjson.dumps(document).decode()


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
