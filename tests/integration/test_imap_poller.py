"""ImapPoller against a real Dovecot (tests/dovecot.py); needs neither Kafka nor Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.intake.imap import ImapPoller
from tests.dovecot import DovecotServer

pytestmark = pytest.mark.integration

# Generous: a loaded 2-core CI box, and reconnects that back off for seconds.
OUTCOME_TIMEOUT = 60.0
POLL_SECONDS = 0.2
POLLER_LOGGER = "services.intake.imap"


def mail(number: int) -> bytes:
    return (
        f"From: Customer {number} <customer{number}@example.com>\r\n"
        f"To: support@example.com\r\n"
        f"Subject: Question {number}\r\n"
        f"Message-ID: <question-{number}@example.com>\r\n"
        f"\r\n"
        f"Question number {number} (with an unbalanced parenthesis.\r\n"
    ).encode()


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[DovecotServer]:
    with DovecotServer(tmp_path) as server:
        yield server


def poller_for(dovecot: DovecotServer, *, password: str | None = None, ssl: bool = False, **options) -> ImapPoller:
    return ImapPoller(
        dovecot.host,
        dovecot.ssl_port if ssl else dovecot.port,
        dovecot.user,
        SecretStr(password or dovecot.password),
        ssl=ssl,
        mailbox="INBOX",
        poll_seconds=POLL_SECONDS,
        **options,
    )


class Handler:
    """Records every message handed over; raises for a UID as often as `failures` says, and returns
    only once `hold` (when given) is set."""

    def __init__(self) -> None:
        self.handed_over: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self.failures: dict[int, int] = {}
        self.hold: asyncio.Event | None = None

    async def __call__(self, uid: int, raw: bytes) -> None:
        await self.handed_over.put((uid, raw))
        if self.hold is not None:
            await self.hold.wait()
        if self.failures.get(uid):
            self.failures[uid] -= 1
            raise RuntimeError("Kafka is unreachable")


class PollerRun:
    def __init__(self, task: asyncio.Task, handler: Handler) -> None:
        self.task = task
        self.handler = handler

    async def next_handed_over(self) -> tuple[int, bytes]:
        """The next message handed to the handler; fails at once should the poller crash."""
        next_message = asyncio.ensure_future(self.handler.handed_over.get())
        done, _ = await asyncio.wait(
            {next_message, self.task}, timeout=OUTCOME_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if next_message in done:
            return next_message.result()
        next_message.cancel()
        if self.task in done:
            raise AssertionError(f"the poller stopped: {self.task!r}")
        raise AssertionError(f"nothing was handed over within {OUTCOME_TIMEOUT} s")


@contextlib.asynccontextmanager
async def running(poller: ImapPoller, handler: Handler | None = None) -> AsyncIterator[PollerRun]:
    handler = handler or Handler()
    task = asyncio.create_task(poller.run(handler))
    try:
        yield PollerRun(task, handler)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # run() ends only by passing the cancellation on.
        assert task.cancelled()


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + OUTCOME_TIMEOUT
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {OUTCOME_TIMEOUT} s: {what}")
        await asyncio.sleep(0.05)


def warnings_containing(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == POLLER_LOGGER and record.levelno == logging.WARNING and text in record.getMessage()
    ]


async def test_unseen_messages_are_handed_over_once_in_uid_order_then_marked_seen(dovecot: DovecotServer) -> None:
    dovecot.deliver(mail(0), seen=True)  # read by someone already: not for us
    uids = [dovecot.deliver(mail(number)) for number in (1, 2, 3)]

    # Batches of two: the three messages take two fetches.
    async with running(poller_for(dovecot, batch_size=2)) as run:
        assert [await run.next_handed_over() for _ in uids] == [
            (uid, mail(n)) for uid, n in zip(uids, (1, 2, 3), strict=True)
        ]
        await eventually(lambda: dovecot.list_uids("UNSEEN") == [], "all three marked seen")
        # Handed over next, it proves that the polls in between did not hand the three over again.
        latest = dovecot.deliver(mail(4))
        assert await run.next_handed_over() == (latest, mail(4))

    assert all("\\Seen" in dovecot.flags(uid) for uid in uids)


async def test_a_message_whose_handler_fails_stays_unseen_and_is_handed_over_again(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=POLLER_LOGGER)
    failing, following = dovecot.deliver(mail(1)), dovecot.deliver(mail(2))
    handler = Handler()
    handler.failures[failing] = 1

    async with running(poller_for(dovecot), handler) as run:
        # Only unseen messages are handed over: the second attempt shows the failure left it unseen.
        # The one after it waits, so that it cannot overtake the message it may answer.
        handed_over = [(await run.next_handed_over())[0] for _ in range(3)]
        assert handed_over == [failing, failing, following]
        await eventually(lambda: dovecot.list_uids("UNSEEN") == [], "both marked seen")

    assert f"UID {failing} of INBOX failed; it stays unseen" in caplog.text


async def test_a_restarted_poller_hands_over_only_new_mail_and_the_stopped_one_logged_out(
    dovecot: DovecotServer,
) -> None:
    handled = [dovecot.deliver(mail(1)), dovecot.deliver(mail(2))]
    async with running(poller_for(dovecot)) as run:
        assert [(await run.next_handed_over())[0] for _ in handled] == handled
        await eventually(lambda: dovecot.list_uids("UNSEEN") == [], "both marked seen")
        # Only the poller's own session is left open, so the next one to end is the poller's.
        await eventually(lambda: dovecot.open_sessions() == 1, "the helper sessions ended")
        endings_before_stop = len(dovecot.session_endings())

    await eventually(lambda: dovecot.open_sessions() == 0, "the poller's session ended")
    assert dovecot.session_endings()[endings_before_stop:] == ["Logged out"]

    new = dovecot.deliver(mail(3))
    async with running(poller_for(dovecot)) as run:
        # UID order would have put an old message first.
        assert await run.next_handed_over() == (new, mail(3))


async def test_the_poller_survives_a_dovecot_outage(dovecot: DovecotServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=POLLER_LOGGER)
    poller = poller_for(dovecot)
    async with running(poller) as run:
        before = dovecot.deliver(mail(1))
        assert (await run.next_handed_over())[0] == before
        await eventually(lambda: poller.connected, "connected")

        dovecot.stop()
        await eventually(lambda: not poller.connected, "the lost connection noticed")
        await eventually(lambda: len(warnings_containing(caplog, "reconnecting")) >= 2, "reconnections tried")
        dovecot.start()

        after = dovecot.deliver(mail(2))
        assert await run.next_handed_over() == (after, mail(2))
        await eventually(lambda: poller.connected, "connected again")


async def test_a_message_whose_mark_was_lost_with_the_connection_is_handed_over_again(dovecot: DovecotServer) -> None:
    handler = Handler()
    handler.hold = asyncio.Event()
    uid = dovecot.deliver(mail(1))
    async with running(poller_for(dovecot), handler) as run:
        assert (await run.next_handed_over())[0] == uid
        # The handler returns only after the connection it would be marked on is gone.
        dovecot.restart()
        handler.hold.set()
        # Not marked, so handed over again: at least once, never lost.
        assert (await run.next_handed_over())[0] == uid
        await eventually(lambda: dovecot.list_uids("UNSEEN") == [], "marked seen after the second hand-over")


async def test_tls_with_a_certificate_the_context_trusts(dovecot: DovecotServer) -> None:
    uid = dovecot.deliver(mail(1))
    async with running(poller_for(dovecot, ssl=True, ssl_context=dovecot.ssl_context())) as run:
        assert await run.next_handed_over() == (uid, mail(1))
        await eventually(lambda: dovecot.list_uids("UNSEEN") == [], "marked seen")


async def test_an_untrusted_certificate_is_logged_and_retried(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=POLLER_LOGGER)
    dovecot.deliver(mail(1))
    # The default context trusts the system's CAs, which never signed the test certificate.
    async with running(poller_for(dovecot, ssl=True)) as run:
        await eventually(
            lambda: len(warnings_containing(caplog, "CERTIFICATE_VERIFY_FAILED")) >= 2, "two failed handshakes"
        )
        assert run.handler.handed_over.empty()
    assert dovecot.list_uids("UNSEEN") != []


async def test_rejected_credentials_are_logged_and_retried_until_they_work(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=POLLER_LOGGER)
    uid = dovecot.deliver(mail(1))
    async with running(poller_for(dovecot, password="the-new-password")) as run:
        await eventually(lambda: warnings_containing(caplog, "LOGIN failed"), "a rejected login")
        assert run.handler.handed_over.empty()

        # Dovecot delays every login after a failure from the same address more (2 s, 4 s, 8 s…):
        # one failure is enough to wait for.
        dovecot.set_password("the-new-password")
        assert await run.next_handed_over() == (uid, mail(1))

    assert "AUTHENTICATIONFAILED" in caplog.text
    assert "the-new-password" not in caplog.text


async def test_handled_messages_move_to_the_processed_folder(dovecot: DovecotServer) -> None:
    uids = [dovecot.deliver(mail(1)), dovecot.deliver(mail(2))]
    async with running(poller_for(dovecot, processed_folder="Processed")) as run:
        assert [(await run.next_handed_over())[0] for _ in uids] == uids
        await eventually(lambda: dovecot.list_uids(mailbox="INBOX") == [], "both moved out of the inbox")

    assert len(dovecot.list_uids("SEEN", mailbox="Processed")) == len(uids)
