"""Talking to customers on the channel they wrote from: acknowledgements and agent replies."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from services.notifier.email_out import EmailSender, build_email, is_no_reply_address, message_id_of, reply_subject
from services.notifier.slack import SlackPoster
from shared.config import DeskConfig
from shared.conversations import chat_channel, remember_conversation, telegram_message
from shared.events import MessageAdded, ReplyRoute, TicketCreated
from shared.identities import normalise_email
from shared.read_model import UNDELIVERABLE_KEY

logger = logging.getLogger(__name__)

DELIVERED_TTL_SECONDS = 30 * 24 * 3600

TelegramSend = Callable[[ReplyRoute, str], Awaitable[str]]


def _acknowledgement_counter(route: ReplyRoute) -> str:
    return f"sb:notifier:acks:{route.channel}:{route.address.lower()}"


class CustomerChannels:
    def __init__(
        self,
        config: DeskConfig,
        redis: Redis,
        slack: SlackPoster,
        email: EmailSender | None,
        telegram: TelegramSend | None,
    ):
        self.config = config
        self.redis = redis
        self.slack = slack
        self.email = email
        self.telegram = telegram

    async def acknowledge(self, created: TicketCreated) -> None:
        route = created.reply_route
        if route is None or not created.acknowledge or not await self._acknowledgement_allowed(route):
            return
        await self._send_acknowledgement(created, route)
        # Counted once sent: a relay outage that is retried must not use up the contact's quota.
        counter = _acknowledgement_counter(route)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(counter)
            pipe.expire(counter, 3600, nx=True)
            await pipe.execute()

    async def _send_acknowledgement(self, created: TicketCreated, route: ReplyRoute) -> None:
        templates = self.config.acknowledgements
        fields = {
            "ticket_id": created.ticket_id,
            "name": created.contact.name or "there",
            "subject": created.subject or "your request",
        }
        if route.channel == "email":
            await self._email(
                f"{created.event_id}:ack",
                created.ticket_id,
                route,
                subject=templates.email_subject.format(**fields),
                body=templates.email_body.format(**fields),
                automatic=True,
            )
        elif route.channel == "telegram":
            await self._once(
                f"{created.event_id}:ack",
                lambda: self._telegram(created.ticket_id, route, templates.telegram.format(**fields)),
            )
        elif route.channel == "slack":
            await self.slack.post(
                f"{created.event_id}:ack", route.address, templates.slack.format(**fields), thread_ts=route.reply_to_id
            )

    async def deliver_reply(self, reply: MessageAdded) -> None:
        route = reply.reply_route
        if route is None:
            logger.warning("agent reply with nowhere to go", extra={"ticket_id": reply.ticket_id})
            return
        key = str(reply.event_id)
        if route.channel == "email":
            await self._email(
                key,
                reply.ticket_id,
                route,
                subject=reply_subject(reply.ticket_id, route.subject),
                body=reply.text,
                automatic=False,
            )
        elif route.channel == "telegram":
            await self._once(key, lambda: self._telegram(reply.ticket_id, route, reply.text))
        elif route.channel == "slack":
            await self.slack.post(key, route.address, reply.text, thread_ts=route.reply_to_id)
        elif route.channel == "chat":
            frame = {
                "type": "message",
                "id": str(reply.message_id),
                "from": "agent",
                "text": reply.text,
                "at": reply.received_at.isoformat(),
            }
            # Sessions that are not connected now replay the ticket's messages when they come back.
            await self.redis.publish(chat_channel(reply.ticket_id), json.dumps(frame))

    async def _acknowledgement_allowed(self, route: ReplyRoute) -> bool:
        if route.channel == "email" and is_no_reply_address(route.address):
            return False
        sent_this_hour = int(await self.redis.get(_acknowledgement_counter(route)) or 0)
        if sent_this_hour >= self.config.acknowledgements.per_hour:
            logger.info("acknowledgement skipped: hourly limit reached", extra={"address": route.address})
            return False
        return True

    async def _email(
        self, key: str, ticket_id: str, route: ReplyRoute, *, subject: str, body: str, automatic: bool
    ) -> None:
        if await self.redis.sismember(UNDELIVERABLE_KEY, normalise_email(route.address)):
            logger.warning(
                "not emailing an address that bounced", extra={"ticket_id": ticket_id, "address": route.address}
            )
            return
        if self.email is None:
            logger.info("would email (no SMTP relay configured)", extra={"ticket_id": ticket_id, "subject": subject})
            return
        sender = self.email

        async def send() -> None:
            message = build_email(
                ticket_id=ticket_id,
                sender=sender.mail_from,
                route=route,
                subject=subject,
                body=body,
                automatic=automatic,
            )
            # Recorded before sending: a reply can come back faster than we finish here.
            await remember_conversation(self.redis, [f"email:{message_id_of(message)}"], ticket_id)
            await sender.send(message)

        await self._once(key, send)

    async def _telegram(self, ticket_id: str, route: ReplyRoute, text: str) -> None:
        if self.telegram is None:
            logger.info("would message on Telegram (no bot token)", extra={"chat": route.address})
            return
        sent_id = await self.telegram(route, text)
        # A customer who answers this very message (Telegram's reply) reaches this ticket.
        await remember_conversation(self.redis, [telegram_message(route.address, sent_id)], ticket_id)

    async def _once(self, key: str, send: Callable[[], Awaitable[None]]) -> None:
        done = f"sb:notifier:delivered:{key}"
        if await self.redis.exists(done):
            return
        await send()
        await self.redis.set(done, "1", ex=DELIVERED_TTL_SECONDS)
