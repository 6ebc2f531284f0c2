"""Mail is read in worker processes; a read that runs too long is refused, and the worker replaced."""

from __future__ import annotations

import asyncio
import os
import pickle
import time

import pytest

from services.intake.email.mime import MailUnreadable
from services.intake.email.reading import MailReading, read_mail
from services.intake.mail_readers import MailNotRead, MailReaders, MailReadersStopped

MAIL = b"From: Ana <ana@customer.example>\r\nTo: support@example.com\r\nSubject: Help\r\n\r\nCannot log in.\r\n"
STUCK = b"stuck"  # stands for a mail whose reading never ends
DIES = b"dies"  # stands for a mail that takes its worker process down


def read_or_misbehave(raw: bytes) -> MailReading:
    """Worker side (imported by name in the worker process)."""
    if raw == STUCK:
        time.sleep(3600)
    if raw == DIES:
        os._exit(1)
    return read_mail(raw)


def test_a_reading_crosses_process_boundaries_whole():
    reading = read_mail(MAIL)
    assert pickle.loads(pickle.dumps(reading)) == reading
    assert reading.classification.mail_class == "normal" and reading.acknowledge


async def test_workers_read_mail_and_pass_on_what_is_not_mail():
    readers = MailReaders(workers=2, timeout=60)
    async with readers.running():
        first, second = await asyncio.gather(readers.read(MAIL), readers.read(MAIL.replace(b"Help", b"Again")))
        assert (first.mail.subject, second.mail.subject) == ("Help", "Again")
        assert first.mail.new_text == "Cannot log in."
        with pytest.raises(MailUnreadable):
            await readers.read(b"   ")
        assert (await readers.read(MAIL)).mail.subject == "Help", "the worker survives a mail it refused"


async def test_a_read_past_the_bound_is_refused_and_the_next_mail_gets_a_fresh_worker():
    readers = MailReaders(workers=1, timeout=2, read=read_or_misbehave)
    async with readers.running():
        with pytest.raises(MailNotRead, match="longer than 2 s"):
            await readers.read(STUCK)
        # With one worker, the next mail is read only if the stuck process was ended and replaced.
        assert (await readers.read(MAIL)).mail.subject == "Help"


async def test_a_worker_that_dies_is_replaced():
    readers = MailReaders(workers=1, timeout=60, read=read_or_misbehave)
    async with readers.running():
        with pytest.raises(MailNotRead, match="ended abruptly"):
            await readers.read(DIES)
        assert (await readers.read(MAIL)).mail.subject == "Help"


async def test_reading_outside_the_lifespan_is_a_programming_error():
    with pytest.raises(RuntimeError):
        await MailReaders(workers=1, timeout=1).read(MAIL)


async def test_a_read_under_way_when_the_service_stops_asks_to_be_tried_again():
    readers = MailReaders(workers=1, timeout=60, read=read_or_misbehave)
    async with readers.running():
        stuck = asyncio.ensure_future(readers.read(STUCK))
        waiting = asyncio.ensure_future(readers.read(MAIL))
        await asyncio.sleep(0)  # one turn of the loop: the first read is handed to the worker, the second waits
    for read in (stuck, waiting):
        with pytest.raises(MailReadersStopped):
            await read
