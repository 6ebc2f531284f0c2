"""Transports to customers on the channel they wrote from: email (the relay), Telegram, web chat.

(Slack Connect customers are answered in their own thread by the Slack transport.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from redis.asyncio import Redis

from services.notifier import csat_asks
from services.notifier.deliveries import Sent
from services.notifier.email_out import EmailSender, build_email, message_id_of
from services.notifier.ledger import mail_thread_key
from services.notifier.plan import Delivery
from services.notifier.telegram import TelegramSender
from shared.conversations import chat_channel, remember_conversation, telegram_message
from shared.csat import CsatSubject

# The rating page's URL for a subject (`shared.csat.csat_url` with the installation's secret).
CsatLink = Callable[[CsatSubject], str]


class _NoDigests:
    enabled = True

    async def send_digest(self, target: str, deliveries: list[Delivery]) -> Sent | None:
        return None

    async def find_sent(self, delivery: Delivery, thread_ts: str | None, since: float) -> str | None:
        return None


class EmailTransport(_NoDigests):
    def __init__(self, sender: EmailSender | None, redis: Redis, csat_link: CsatLink | None = None):
        self.sender = sender
        self.redis = redis
        self.csat_link = csat_link

    @property
    def enabled(self) -> bool:
        return self.sender is not None

    async def send(self, delivery: Delivery, thread_ts: str | None) -> Sent | None:
        assert self.sender is not None, "the scheduler sends only through enabled transports"
        if delivery.route is None:
            return None
        body = delivery.text
        if delivery.csat is not None:
            if self.csat_link is None:
                return None
            link = self.csat_link(delivery.csat)
            body = csat_asks.email_body(
                delivery.ticket_id, link, delivery.language, delivery.timezone, datetime.now(UTC)
            )
        message = build_email(
            ticket_id=delivery.ticket_id,
            sender=self.sender.mail_from,
            route=delivery.route,
            subject=delivery.subject or f"[{delivery.ticket_id}]",
            body=body,
            automatic=delivery.automatic,
            unique=delivery.key,
            earlier=await self.redis.zrange(mail_thread_key(delivery.ticket_id), 0, -1),
            # Set on what we wrote ourselves (acknowledgements, rating requests); an agent's reply is theirs.
            language=delivery.language,
        )
        conversation = f"email:{message_id_of(message)}"
        # Recorded before sending: a reply can come back faster than we finish here.
        await remember_conversation(self.redis, [conversation], delivery.ticket_id)
        await self.sender.send(message)
        return Sent(message_id_of(message), datetime.now(UTC), (conversation,))


class TelegramTransport(_NoDigests):
    def __init__(self, sender: TelegramSender | None):
        self.sender = sender

    @property
    def enabled(self) -> bool:
        return self.sender is not None

    async def send(self, delivery: Delivery, thread_ts: str | None) -> Sent | None:
        assert self.sender is not None, "the scheduler sends only through enabled transports"
        if delivery.route is None:
            return None
        keyboard = csat_asks.telegram_keyboard(delivery.csat) if delivery.csat is not None else None
        sent_id = await self.sender.send(delivery.route, delivery.text, keyboard)
        # A customer who answers this very message (Telegram's reply) reaches this ticket.
        return Sent(sent_id, datetime.now(UTC), (telegram_message(delivery.route.address, sent_id),))


class ChatTransport(_NoDigests):
    """Agent replies reach web-chat sessions through Redis pub/sub, on whichever intake-http holds them."""

    def __init__(self, redis: Redis):
        self.redis = redis

    async def send(self, delivery: Delivery, thread_ts: str | None) -> Sent | None:
        if delivery.csat is not None:
            # The widget shows the scores as buttons and answers with a "csat" frame.
            await self.redis.publish(chat_channel(delivery.ticket_id), json.dumps(csat_asks.chat_frame(delivery.csat)))
            return Sent(None, datetime.now(UTC))
        frame = {
            "type": "message",
            "id": delivery.message_id,
            "from": "agent",
            "text": delivery.text,
            "at": delivery.at,
        }
        # Sessions that are not connected now replay the ticket's messages when they come back.
        await self.redis.publish(chat_channel(delivery.ticket_id), json.dumps(frame))
        return Sent(None, datetime.now(UTC))
