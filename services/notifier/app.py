"""The notifier process: tells agents in Slack about their work and answers customers on their channel."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.knowledge.deflection import help_centre_links
from services.notifier.customers import ChatTransport, EmailTransport, TelegramTransport
from services.notifier.deliveries import DeliveryScheduler
from services.notifier.email_out import EmailSender
from services.notifier.handler import NotifierHandler
from services.notifier.ledger import Ledger
from services.notifier.slack import SlackTransport
from services.notifier.telegram import TelegramSender
from services.notifier.ticket_cards import TicketCards
from services.notifier.wecom import WecomTransport
from services.notifier.whatsapp import WhatsAppTransport, whatsapp_sender
from shared import i18n
from shared.csat import CsatSubject, CsatTokens, csat_secret, csat_url
from shared.process import ServiceProcess
from shared.settings import Settings
from shared.topics import TICKETS, Subscription

logger = logging.getLogger(__name__)

SUBSCRIPTION = Subscription("notifier", "switchboard-notifier", consumes=(TICKETS,), publishes=(TICKETS,))


def _email_sender(settings: Settings, support_addresses: list[str]) -> EmailSender | None:
    mail_from = settings.mail_from or next(iter(support_addresses), None)
    if not settings.smtp_relay_host or not mail_from:
        logger.warning("outbound email is off: set SWITCHBOARD_SMTP_RELAY_HOST and SWITCHBOARD_MAIL_FROM")
        return None
    return EmailSender(settings, mail_from)


def _telegram_sender(settings: Settings) -> TelegramSender | None:
    if not settings.telegram_bot_token:
        logger.warning("Telegram replies are off: SWITCHBOARD_TELEGRAM_BOT_TOKEN is not set")
        return None
    return TelegramSender(settings)


def create_app(settings: Settings | None = None) -> FastAPI:
    process = ServiceProcess("notifier", settings)
    settings, config, redis = process.settings, process.config, process.redis
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    support_addresses = [*config.support_addresses, *filter(None, settings.support_addresses.split(","))]
    telegram = _telegram_sender(settings)
    slack = SlackTransport(token, settings.slack_api_url, cards=TicketCards(redis, config))
    tokens = CsatTokens(csat_secret(settings))

    def csat_link(subject: CsatSubject) -> str:
        return csat_url(settings, tokens, subject)

    whatsapp = WhatsAppTransport(whatsapp_sender(settings), csat_link)
    wecom = WecomTransport(settings, redis, csat_link)
    ledger = Ledger(redis, intent_lease_seconds=settings.delivery_intent_lease_seconds)
    scheduler = DeliveryScheduler(
        {
            "slack": slack,
            "email": EmailTransport(_email_sender(settings, support_addresses), redis, csat_link),
            "telegram": TelegramTransport(telegram),
            "chat": ChatTransport(redis),
            "whatsapp": whatsapp,
            "wecom": wecom,
        },
        ledger,
        owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        retry_deadline=settings.retry_deadline_seconds,
    )
    process.consume(
        SUBSCRIPTION.group_id,
        SUBSCRIPTION.consumes,
        NotifierHandler(config, ledger, scheduler, process.topics, links=help_centre_links(settings)),
    )

    @asynccontextmanager
    async def deliveries() -> AsyncIterator[None]:
        # Before the engine starts: the first texts would otherwise wait for the catalogues to compile.
        await asyncio.to_thread(i18n.load_catalogues)
        try:
            yield
        finally:
            await scheduler.aclose()
            await slack.aclose()
            await wecom.aclose()
            if telegram is not None:
                await telegram.aclose()
            await whatsapp.aclose()

    return process.app(while_running=deliveries)
