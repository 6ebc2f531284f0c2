"""All that intake learns from a mail's bytes, in one pure call that a worker process can make.

`read_mail` parses the mail, classifies it and picks out what threading and acknowledging need.
Its result is plain data (dataclasses, strings, bytes, datetimes), so it crosses a process
boundary by pickling.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy

from services.intake.email.classify import Classification, classify_mail
from services.intake.email.mime import ParsedMail, parse_mail

# Returned messages inside a bounce name the mail that failed: its Message-ID threads the bounce.
_RETURNED_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")


@dataclass(frozen=True)
class MailReading:
    mail: ParsedMail
    classification: Classification
    returned_message_ids: list[str]  # bounces: Message-IDs (without <>) of the returned originals
    acknowledge: bool  # whether an automatic acknowledgement may answer it (`Classification.acknowledge`)


def read_mail(raw: bytes) -> MailReading:
    """Parse and classify `raw`. Raises `MailUnreadable` when the bytes are not mail at all."""
    mail = parse_mail(raw)
    classification = classify_mail(mail, raw)
    return MailReading(
        mail=mail,
        classification=classification,
        returned_message_ids=_returned_message_ids(mail) if classification.mail_class == "bounce" else [],
        acknowledge=classification.acknowledge,
    )


def _returned_message_ids(mail: ParsedMail) -> list[str]:
    found = []
    for attachment in mail.attachments:
        if attachment.content_type in _RETURNED_TYPES:
            returned = message_from_bytes(attachment.content, policy=policy.compat32)
            if message_id := (returned.get("Message-ID") or "").strip().strip("<>"):
                found.append(message_id)
    return found
