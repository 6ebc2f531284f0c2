"""Email intake from an IMAP mailbox (SPEC §3: mark seen/move only after the message is on Kafka;
survive server disconnects).

`ImapPoller.run(handle)` hands every unseen message of one mailbox to `handle(uid, raw_bytes)`,
lowest UID (oldest) first, and only once `handle` has returned (for intake: the message is on
Kafka) marks it \\Seen and, when a processed folder is configured, moves it there. Messages are
fetched with BODY.PEEK[], which leaves \\Seen alone, so being read is never taken for being handled.

Delivery is at least once: dying, or losing the connection, between `handle` returning and the
mark reaching the server hands the message over again later, so `handle` must be idempotent
(intake recognises a message it has seen by its Message-ID). Nothing is skipped: selection is by
the \\Seen flag on the server, not by UIDs remembered here, so a restarted poller (or a changed
UIDVALIDITY) resumes exactly where the flags say. Several pollers on one mailbox would each hand
over the same messages; idempotence keeps that correct, but one poller per mailbox is the set-up.

When `handle` raises, the message stays unseen and the rest of that poll is abandoned: the next
poll starts again from it. Going on with later messages is not safe: a reply could overtake the
message it answers and open a ticket of its own, and since a failure is almost always downstream
(Kafka unreachable) the later ones would fail too. `handle` must therefore not raise for a
message that can never succeed (malformed mail): it deals with that itself, or it blocks the mailbox.

Any connection failure (refused, TLS, timeout, the server's BYE, rejected login) is logged and
retried with exponential backoff, 0.5 s doubling to 30 s; the loop ends only when cancelled.

With ssl=False the password travels in clear text: STARTTLS is not attempted, so anything beyond
localhost should use ssl=True (port 993).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl as tls
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

from aioimaplib import AUTH, IMAP4, NONAUTH, SELECTED, AioImapException, Response, quoted
from fastapi import FastAPI
from pydantic import SecretStr

from services.intake.core import IntakeProcess
from services.intake.email.mime import MailUnreadable
from services.intake.mail import MailIntake, own_addresses, support_addresses
from services.intake.mail_readers import MailNotRead, MailReaders
from shared.settings import ChannelOff, Settings

logger = logging.getLogger(__name__)

MessageHandler = Callable[[int, bytes], Awaitable[None]]

# Also the longest silence tolerated while a message is being downloaded (aioimaplib restarts it on every chunk).
COMMAND_TIMEOUT = 30.0
LOGOUT_TIMEOUT = 5.0
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 30.0

_UID = re.compile(rb"\bUID (\d+)")
_T = TypeVar("_T")


class ImapError(Exception):
    """The server refused a command or went away; the poller reconnects."""


# What a broken or refusing server looks like.
_CONNECTION_ERRORS = (ImapError, OSError, TimeoutError, AioImapException)


class ImapPoller:
    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: SecretStr,
        *,
        ssl: bool,
        mailbox: str,
        poll_seconds: float,
        batch_size: int = 20,
        processed_folder: str | None = None,
        ssl_context: tls.SSLContext | None = None,
    ) -> None:
        """`ssl_context` (only with ssl=True) defaults to the system's trusted CAs with hostname checking."""
        if ssl_context is not None and not ssl:
            raise ValueError("ssl_context is only used with ssl=True")
        self.host = host
        self.port = port
        self.user = user
        self.mailbox = mailbox
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.processed_folder = processed_folder
        self._password = password
        self._ssl_context = (ssl_context or tls.create_default_context()) if ssl else None
        # The current connection once it has been through a whole poll.
        self._polling_connection: _Connection | None = None

    @property
    def connected(self) -> bool:
        """Whether the current connection has polled the mailbox and is still up (for readiness checks)."""
        connection = self._polling_connection
        return connection is not None and not connection.disconnected.is_set()

    async def run(self, handle: MessageHandler) -> None:
        """Poll until cancelled; see the module documentation for what is guaranteed."""
        backoff = INITIAL_BACKOFF
        try:
            while True:
                connection = _Connection(self.host, self.port, self._ssl_context)
                try:
                    await self._poll(connection, handle)
                except Exception as error:
                    if self._polling_connection is connection:
                        # A session that got going starts the next outage's backoff afresh; one failing
                        # at the same step every time (say, a read-only mailbox) keeps backing off.
                        backoff = INITIAL_BACKOFF
                    # A broken or refusing server is to be expected; anything else is a bug worth its traceback.
                    expected = isinstance(error, _CONNECTION_ERRORS)
                    logger.log(
                        logging.WARNING if expected else logging.ERROR,
                        "IMAP %s:%d: %s (reconnecting in %.1f s)",
                        self.host,
                        self.port,
                        _describe(error),
                        backoff,
                        exc_info=not expected,
                    )
                finally:
                    self._polling_connection = None
                    await connection.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        except asyncio.CancelledError:
            logger.info("IMAP: stopped polling %s on %s:%d", self.mailbox, self.host, self.port)
            raise

    async def _poll(self, connection: _Connection, handle: MessageHandler) -> None:
        """Log in and poll until the connection fails, which ends in an exception."""
        await connection.open(self.user, self._password.get_secret_value(), self.mailbox)
        if self.processed_folder is not None:
            await connection.ensure_folder(self.processed_folder)
        logger.info("IMAP: polling %s on %s:%d every %.1f s", self.mailbox, self.host, self.port, self.poll_seconds)
        while True:
            await self._hand_over_unseen(connection, handle)
            self._polling_connection = connection
            # Waiting on the disconnection rather than sleeping notices a server going away at once.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connection.disconnected.wait(), self.poll_seconds)
            if connection.disconnected.is_set():
                raise ImapError("the server closed the connection")

    async def _hand_over_unseen(self, connection: _Connection, handle: MessageHandler) -> None:
        uids = await connection.unseen_uids()
        for start in range(0, len(uids), self.batch_size):
            batch = uids[start : start + self.batch_size]
            messages = await connection.fetch(batch)
            for uid in batch:
                raw = messages.get(uid)
                if raw is None:
                    continue  # expunged by another client since the search
                try:
                    await handle(uid, raw)
                except Exception:
                    logger.exception(
                        "IMAP: handling message UID %d of %s failed; it stays unseen and this poll ends here",
                        uid,
                        self.mailbox,
                    )
                    return
                await connection.mark_seen(uid)
                if self.processed_folder is not None:
                    await connection.move(uid, self.processed_folder)


class _Connection:
    """One IMAP session. Its commands fail as soon as the server hangs up instead of waiting out their timeout."""

    def __init__(self, host: str, port: int, ssl_context: tls.SSLContext | None) -> None:
        self.disconnected = asyncio.Event()
        # aioimaplib's IMAP4_SSL would not report a lost connection: IMAP4 with a context does TLS just the same.
        self._client = IMAP4(
            host, port, timeout=COMMAND_TIMEOUT, conn_lost_cb=self._connection_lost, ssl_context=ssl_context
        )

    def _connection_lost(self, _error: Exception | None) -> None:
        self.disconnected.set()

    async def open(self, user: str, password: str, mailbox: str) -> None:
        await self._until_disconnected(self._client.wait_hello_from_server())
        await self._command("LOGIN", self._client.login(quoted(user), password))
        await self._command("SELECT", self._client.select(quoted(mailbox)))

    async def ensure_folder(self, folder: str) -> None:
        if not self._client.has_capability("MOVE"):
            raise ImapError(f"the server cannot MOVE (RFC 6851), which moving messages to {folder!r} needs")
        response = await self._until_disconnected(self._client.create(quoted(folder)))
        if response.result != "OK" and "ALREADYEXISTS" not in _text(response):
            raise ImapError(f"CREATE {folder!r} failed: {response.result} {_text(response)}")

    async def unseen_uids(self) -> list[int]:
        """The UIDs of the unseen messages, in ascending order."""
        # A server answers SEARCH from its view as of our previous command: NOOP brings in mail delivered since.
        await self._command("NOOP", self._client.noop())
        # No CHARSET: some servers reject it, and UNSEEN has no text to encode.
        response = await self._command("UID SEARCH", self._client.uid_search("UNSEEN", charset=None))
        # The last line is the completion text; the others list UIDs.
        return sorted({int(token) for line in response.lines[:-1] for token in line.split() if token.isdigit()})

    async def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The raw messages by UID; a message expunged meanwhile is missing."""
        message_set = ",".join(str(uid) for uid in uids)
        response = await self._command("UID FETCH", self._client.uid("fetch", message_set, "(BODY.PEEK[])"))
        return _messages_by_uid(response.lines)

    async def mark_seen(self, uid: int) -> None:
        await self._command("UID STORE", self._client.uid("store", str(uid), "+FLAGS.SILENT (\\Seen)"))

    async def move(self, uid: int, folder: str) -> None:
        await self._command("UID MOVE", self._client.uid("move", str(uid), quoted(folder)))

    async def close(self) -> None:
        """Log out if the server still listens, then drop the connection."""
        try:
            if not self.disconnected.is_set() and self._client.get_state() in (NONAUTH, AUTH, SELECTED):
                await asyncio.wait_for(self._until_disconnected(self._client.logout()), LOGOUT_TIMEOUT)
        except _CONNECTION_ERRORS as error:
            logger.debug("IMAP: logout failed: %s", _describe(error))
        finally:
            if self._client.protocol.transport is not None:
                self._client.protocol.transport.close()

    async def _command(self, name: str, operation: Awaitable[Response]) -> Response:
        response = await self._until_disconnected(operation)
        if response.result != "OK":
            raise ImapError(f"{name} failed: {response.result} {_text(response)}")
        return response

    async def _until_disconnected(self, operation: Awaitable[_T]) -> _T:
        """The outcome of `operation`, or ImapError as soon as the connection is lost."""
        operation_task = asyncio.ensure_future(operation)
        disconnection = asyncio.ensure_future(self.disconnected.wait())
        try:
            done, _ = await asyncio.wait({operation_task, disconnection}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            disconnection.cancel()
            operation_task.cancel()  # does nothing once it is done
        if operation_task not in done:
            raise ImapError("the server closed the connection")
        return operation_task.result()


def _messages_by_uid(lines: Sequence[bytes | bytearray]) -> dict[int, bytes]:
    """The messages in a UID FETCH (BODY.PEEK[]) response.

    aioimaplib gives each literal (here: a message) as a bytearray between the line announcing it,
    `3 FETCH (UID 7 BODY[] {1234}`, and the line closing that item, `)`; servers put the UID in either.
    Unsolicited FETCH lines (flag changes by other clients) carry no literal and are passed over.
    """
    messages = {}
    for index, line in enumerate(lines):
        if not isinstance(line, bytearray):
            continue
        closing = lines[index + 1] if index + 1 < len(lines) else b""
        if match := _UID.search(lines[index - 1]) or _UID.search(closing):
            messages[int(match[1])] = bytes(line)
    return messages


def _text(response: Response) -> str:
    """The server's words about a command: the text of its tagged completion."""
    return bytes(response.lines[-1]).decode(errors="replace") if response.lines else ""


def _describe(error: BaseException) -> str:
    # A TimeoutError says nothing by itself.
    return str(error) or type(error).__name__


def create_app(settings: Settings | None = None) -> FastAPI:
    """intake-imap: polls the mailbox for the lifetime of this app, which serves /healthz, /readyz, /metrics."""
    settings = settings or Settings()
    if not (settings.imap_host and settings.imap_user and settings.imap_password):
        raise ChannelOff("IMAP is off: set SWITCHBOARD_IMAP_HOST, SWITCHBOARD_IMAP_USER and SWITCHBOARD_IMAP_PASSWORD")
    process = IntakeProcess("intake-imap", settings)
    intake = process.intake
    readers = MailReaders(settings.mail_read_workers, settings.mail_read_timeout_seconds)
    own = own_addresses(settings, support_addresses(settings, process.config.support_addresses))
    mail = MailIntake(intake, own, readers)
    source = f"imap:{settings.imap_mailbox}"
    poller = ImapPoller(
        settings.imap_host,
        settings.imap_port,
        settings.imap_user,
        settings.imap_password,
        ssl=settings.imap_ssl,
        mailbox=settings.imap_mailbox,
        poll_seconds=settings.imap_poll_seconds,
        processed_folder=settings.imap_processed_folder,
    )

    async def take(uid: int, raw: bytes) -> None:
        # Raising leaves the mail unseen for the next poll: right for Kafka/Redis outages only.
        try:
            outcome = await mail.accept(raw, source=source)
        except MailUnreadable as error:
            await intake.dead_letter(raw, source=f"{source}:{uid}", reason=f"not mail: {error}")
            return
        except MailNotRead as error:
            # Polling it again would fail the same way and hold up the mailbox: it is kept on the DLQ.
            await intake.dead_letter(raw, source=f"{source}:{uid}", reason=f"mail not read: {error}")
            return
        logger.info("IMAP mail taken", extra={"uid": uid, "status": outcome.status, "ticket_id": outcome.ticket_id})

    @asynccontextmanager
    async def polling() -> AsyncIterator[None]:
        async with readers.running():
            task = asyncio.create_task(poller.run(take), name="imap-poller")
            try:
                yield
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    return process.app(while_running=polling, extra_checks=lambda: {"imap": poller.connected})
