"""Messages larger than a Kafka record: taken once, the full text kept as an attachment, on every channel."""

from __future__ import annotations

import asyncio
import smtplib
import time
from email import policy

import pytest

from services.intake.records import EXCERPT_CHARS, MAX_RECORD_BYTES, record_size
from shared.attachments import AttachmentStore
from shared.events import Attachment
from shared.read_model import ReadModel
from shared.redis_client import connect_redis
from shared.settings import Settings
from tests.conftest import free_port
from tests.integration.test_email_stack import SUPPORT, mail, wait_for_smtp
from tests.integration.test_telegram_intake import (
    client,
    deliver,
    intake,
    process,
    published,
    telegram_settings,
    telegram_update,
)
from tests.support import ServiceProcesses

pytestmark = pytest.mark.integration
__all__ = ["client", "intake", "process", "telegram_settings"]  # fixtures, shared with the Telegram tests

FIVE_MB = 5 * 1024 * 1024


def long_text(size: int) -> str:
    """Numbered lines, so that any lost or reordered part would show."""
    lines, length, number = [], 0, 0
    while length < size:
        line = f"line {number}: the customer pasted a very long log, щ 注 😀"
        lines.append(line)
        length += len(line) + 1
        number += 1
    return "\n".join(lines)


async def ticket_message(settings: Settings, ticket_id: str, timeout: float = 60) -> dict:
    redis = connect_redis(settings.redis_url)
    try:
        deadline = time.monotonic() + timeout
        while (ticket := await ReadModel(redis).ticket(ticket_id)) is None or not ticket["messages"]:
            assert time.monotonic() < deadline, f"no message on {ticket_id} in {timeout}s"
            await asyncio.sleep(0.2)
        [message] = ticket["messages"]
        return message
    finally:
        await redis.aclose()


def full_text_of(settings: Settings, message: dict) -> str:
    [kept] = [attachment for attachment in message["attachments"] if attachment["filename"] == "message.txt"]
    return AttachmentStore(settings.data_dir / "attachments").read(Attachment.model_validate(kept)).decode()


async def test_a_telegram_update_with_5_mb_of_text_is_taken_once_and_kept_whole(
    client, telegram_settings, services: ServiceProcesses
):
    services.start("router")
    text = long_text(FIVE_MB)
    response = await deliver(client, telegram_update(1, 10, text=text))
    assert response.status_code == 200, response.text[:500]
    [inbound] = await published(telegram_settings, 1)
    assert record_size(inbound) <= MAX_RECORD_BYTES

    message = await ticket_message(telegram_settings, inbound.ticket_id)
    assert message["text"].startswith(text[:EXCERPT_CHARS])
    assert "the full text is attached as message.txt" in message["text"]
    assert full_text_of(telegram_settings, message) == text


async def test_an_email_with_a_huge_body_becomes_a_ticket_with_its_full_text_attached(
    services: ServiceProcesses, settings: Settings
):
    services.start("router")
    smtp_port = free_port()
    services.start("intake-smtp", SWITCHBOARD_SMTP_PORT=str(smtp_port), SWITCHBOARD_OPS_PORT=str(free_port()))
    wait_for_smtp(smtp_port, services)
    text = long_text(FIVE_MB)
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=120) as smtp:
        smtp.ehlo()
        smtp.mail("ana@customer.example")
        smtp.rcpt(SUPPORT)
        code, reply = smtp.data(mail("The whole log", text).as_bytes(policy=policy.SMTP))
    assert code == 250, reply
    ticket_id = reply.decode().rsplit(" ", 1)[-1]

    message = await ticket_message(settings, ticket_id)
    assert message["text"].startswith(text[:EXCERPT_CHARS])
    assert full_text_of(settings, message).rstrip("\n") == text
