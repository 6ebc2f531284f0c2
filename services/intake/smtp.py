"""intake-smtp: an SMTP server for the support addresses that answers 250 only once Kafka has the mail.

Answers in SMTP's own terms: 550 5.1.1 for any other recipient (no open relay), 552 over the
size limit, 451 4.3.0 while Kafka or Redis is unavailable (the sender retries: nothing is lost),
554 5.6.0 for bytes that are not mail.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.errors import KafkaError
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from services.intake.core import IntakeProcess
from services.intake.email.mime import MailUnreadable
from services.intake.mail import MailIntake, own_addresses, support_addresses
from shared.settings import Settings

logger = logging.getLogger(__name__)


class SupportMailbox:
    """The aiosmtpd handler: who we accept mail for, and when we may say 250."""

    def __init__(self, mail: MailIntake, recipients: set[str], registry: CollectorRegistry):
        self.mail = mail
        self.recipients = recipients
        self.outcomes = Counter(
            "switchboard_smtp_messages_total", "SMTP messages by outcome", ["outcome"], registry=registry
        )

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list) -> str:
        if address.lower() not in self.recipients:
            self.outcomes.labels("relay_refused").inc()
            return f"550 5.1.1 <{address}>: no such mailbox here (this server is not a relay)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            outcome = await self.mail.accept(envelope.original_content or b"", source="smtp")
        except MailUnreadable as error:
            self.outcomes.labels("unreadable").inc()
            return f"554 5.6.0 message not readable: {error}"
        except (KafkaError, RedisError, ConnectionError, TimeoutError) as error:
            self.outcomes.labels("deferred").inc()
            logger.warning("mail deferred: queue unavailable", extra={"error": repr(error)})
            return "451 4.3.0 temporarily unable to queue the message, try again later"
        self.outcomes.labels(outcome.status).inc()
        if outcome.status == "quarantined":
            # Accepted: answering a loop or a stray auto-reply with an error would feed the loop.
            logger.info("mail quarantined", extra={"reason": outcome.reason})
            return "250 2.0.0 OK"
        logger.info("mail accepted", extra={"ticket_id": outcome.ticket_id, "reason": outcome.reason})
        return f"250 2.0.0 OK queued on ticket {outcome.ticket_id}"


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not (settings.smtp_tls_cert and settings.smtp_tls_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.smtp_tls_cert, settings.smtp_tls_key)
    return context


def create_app(settings: Settings | None = None) -> FastAPI:
    """The SMTP server runs for the lifetime of this app, which serves /healthz, /readyz, /metrics."""
    process = IntakeProcess("intake-smtp", settings)
    settings = process.settings
    recipients = support_addresses(settings, process.config.support_addresses)
    mail = MailIntake(process.intake, own_addresses(settings, recipients))
    mailbox = SupportMailbox(mail, recipients, process.registry)
    tls = _tls_context(settings)

    @asynccontextmanager
    async def smtp_server() -> AsyncIterator[None]:
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(
                mailbox,
                data_size_limit=settings.smtp_max_bytes,
                enable_SMTPUTF8=True,
                hostname="switchboard",
                ident="Switchboard ESMTP",
                tls_context=tls,
            ),
            host=settings.smtp_host,
            port=settings.smtp_port,
        )
        logger.info(
            "SMTP listening",
            extra={"host": settings.smtp_host, "port": settings.smtp_port, "starttls": tls is not None},
        )
        try:
            yield
        finally:
            server.close()
            await server.wait_closed()

    return process.app(while_running=smtp_server)
