"""Structured JSON logs with personal data redacted (SPEC §4: no secrets, emails or phones in logs)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

# Linear in the text: a match starts where a run of local-part characters starts (tried from every
# position of a long run without an "@", the run would be rescanned from each), or, for an address
# glued to the one just redacted ("a@x.org+b@y.org"), at the "." or "+" that follows it, with at most
# RFC 5321's 64-octet local part.
_EMAIL = re.compile(r"(?:(?<![\w.+-])[\w.+-]+|(?<=[\w-])[.+][\w.+-]{0,63})@[\w-]+(?:\.[\w-]+)+")
# International numbers (+34 600 123 456) and long bare digit runs; dates, times and IPs stay.
_PHONE = re.compile(r"\+\d[\d ()-]{6,}\d|(?<![\w.:-])\d{9,15}(?![\w:-]|\.\d)")
# Slack tokens, and Telegram bot tokens (also inside ".../bot<token>/method" URLs).
_SECRET = re.compile(r"xox[abpr]-[\w-]+|(?<!\d)\d{6,}:[\w-]{30,}")
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        text = text.replace(secret, "[secret]")
    text = _SECRET.sub("[secret]", text)
    text = _EMAIL.sub(lambda match: f"***@{match.group(0).rsplit('@', 1)[1]}", text)
    return _PHONE.sub("[phone]", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.service = service
        # The configured secrets themselves, whatever their shape; longest first, so none is cut.
        self.secrets = tuple(sorted((secret for secret in secrets if len(secret) >= 4), key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": redact(record.getMessage(), self.secrets),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = redact(value, self.secrets) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info), self.secrets)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO", secrets: tuple[str, ...] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka is chatty at INFO about every group rebalance and connection.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # aioimaplib logs protocol chatter at INFO and raw mail content at DEBUG.
    logging.getLogger("aioimaplib").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO; Telegram's carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
