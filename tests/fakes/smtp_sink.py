"""An SMTP relay for tests: a real aiosmtpd server on loopback that records what it receives."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from switchboard.stack import free_loopback_port


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage


class SmtpSink:
    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.refuse_next_with: str | None = None
        self._changed = threading.Condition()
        self.port = free_loopback_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_next_with is not None:
            answer, self.refuse_next_with = self.refuse_next_with, None
            return answer
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self._changed:
            self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message))
            self._changed.notify_all()
        return "250 OK"

    def wait_for(self, predicate, count: int = 1, timeout: float = 30) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [mail for mail in self.received if predicate(mail)]
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    subjects = [mail.message["Subject"] for mail in self.received]
                    raise AssertionError(f"expected {count} matching mail(s) in {timeout}s; received: {subjects}")
                self._changed.wait(remaining)
