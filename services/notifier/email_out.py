"""Email to customers through the SMTP relay: threaded, tagged with the ticket ID, loop-safe."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from services.notifier.errors import Refused
from shared.events import ReplyRoute
from shared.ids import our_message_id
from shared.settings import Settings

logger = logging.getLogger(__name__)

_TICKET_TAG = re.compile(r"\[[A-Z]{2,5}-\d+\]")
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|ref|fw|fwd|tr)\s*:\s*)+", re.IGNORECASE)
# Addresses that must never get an automatic answer (RFC 3834 §2: don't answer machines), and
# mailing-list managers ("list-request@", "list-admin@", "owner-list@").
_NO_REPLY = re.compile(
    r"^(?:(?:no-?reply|do-?not-?reply|mailer-daemon|postmaster|bounces?)(?:[+.-].*)?"
    r"|.+-(?:request|admin|owner|bounces?)|owner-.+)@",
    re.IGNORECASE,
)


def is_no_reply_address(address: str) -> bool:
    return bool(_NO_REPLY.match(address.strip()))


def reply_subject(ticket_id: str, subject: str | None) -> str:
    """'[SB-1042] Re: Cannot log in' — one tag and one 'Re:', however long the thread."""
    bare = _REPLY_PREFIX.sub("", _TICKET_TAG.sub("", subject or "").strip()).strip()
    return f"[{ticket_id}] Re: {bare}" if bare else f"[{ticket_id}]"


def build_email(
    *,
    ticket_id: str,
    sender: str,
    route: ReplyRoute,
    subject: str,
    body: str,
    automatic: bool,
    unique: str | None = None,
    earlier: Sequence[str] = (),
    language: str | None = None,
) -> EmailMessage:
    """A message continuing the customer's thread, with a Message-ID in our own domain.

    `earlier`: the Message-IDs (without <>) of the mails we sent before on this ticket, oldest first;
    they join References, and the last one is In-Reply-To when the customer's route names no message
    of theirs (a form ticket's replies then thread under its acknowledgement; RFC 5322 §3.6.4).

    `language`: the text's language (a BCP 47 tag, "zh-Hans") for `Content-Language` (RFC 3282), when we
    wrote the text ourselves.

    `unique` (a delivery key) makes the Message-ID the same each time the same mail is built, so
    a mail sent again after a crash is recognisably the same message (RFC 5322 §3.6.4).
    """
    message = EmailMessage()
    domain = sender.rsplit("@", 1)[-1]
    message["Message-ID"] = f"<{our_message_id(ticket_id, domain, unique)}>"
    message["From"] = sender
    message["To"] = route.address
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    ours = [message_id for message_id in earlier if message_id != message["Message-ID"].strip("<>")]
    if parent := route.reply_to_id or (ours[-1] if ours else None):
        message["In-Reply-To"] = f"<{parent}>"
    references = [*route.references, *ours, *([route.reply_to_id] if route.reply_to_id else [])]
    if references:
        message["References"] = " ".join(f"<{ref}>" for ref in dict.fromkeys(references))
    message["X-Switchboard-Ticket"] = ticket_id
    if automatic:
        # RFC 3834: marks us as a machine so well-behaved responders stay silent; the second
        # header asks Exchange not to send out-of-office replies back.
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
    message.set_content(body)
    if language:
        # After set_content, which replaces every Content-* header.
        message["Content-Language"] = language
    return message


def message_id_of(message: EmailMessage) -> str:
    return message["Message-ID"].strip("<>")


class EmailSender:
    def __init__(self, settings: Settings, mail_from: str):
        self.settings = settings
        self.mail_from = mail_from

    async def send(self, message: EmailMessage) -> None:
        """Hands the message to the relay; raises Refused when the relay refuses it for good (5xx)."""
        settings = self.settings
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_relay_host,
                port=settings.smtp_relay_port,
                username=settings.smtp_relay_user,
                password=settings.smtp_relay_password.get_secret_value() if settings.smtp_relay_password else None,
                start_tls=settings.smtp_relay_starttls,
                timeout=30,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise Refused(f"relay refused {message['To']}: {error.recipients}") from error
        except aiosmtplib.SMTPResponseException as error:
            if 500 <= error.code < 600:
                raise Refused(f"relay refused the message: {error.code} {error.message}") from error
            raise
