"""Telling a bot from a person on the web form: honeypot, fill time, captcha. Pure.

The customer page carries three fields besides the form's own (services/intake/static):
- `website`, the honeypot: hidden from people (off-screen, out of the tab order, `aria-hidden`), so a
  value in it was typed by a program that fills every field;
- `form_stamp`, the signed time the page got its stamp (`GET /v1/forms/{id}/stamp`): HMAC-SHA256 with the
  installation secret over the form ID and the time, so a bot can neither forge one nor make it older; a
  post sooner than `spam.min_fill_time` after it was no person typing;
- `captcha_token`, the captcha widget's response when `spam.captcha` is configured, verified server side.

A post judged spam is kept in quarantine (reason codes below) and answered like a person's, so the bot
learns nothing; one missing what the page always sends is refused (422) with a field error instead, so a
person whose page did not load it is told to reload.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.guard_config import Spam
from shared.untrusted import same_secret

HONEYPOT_FIELD = "website"
STAMP_FIELD = "form_stamp"
CAPTCHA_FIELD = "captcha_token"
GUARD_FIELDS = (HONEYPOT_FIELD, STAMP_FIELD, CAPTCHA_FIELD)
# A stamp or a captcha token longer than this is none the page made (Turnstile's tokens are ~2 KB at most).
MAX_GUARD_FIELD_CHARS = 4096

# Quarantine reason codes (MessageQuarantined.reason_code, kind "spam").
HONEYPOT = "spam_honeypot"
TOO_FAST = "spam_too_fast"
BAD_STAMP = "spam_bad_stamp"
CAPTCHA_FAILED = "spam_captcha_failed"


@dataclass(frozen=True)
class GuardFields:
    """What the page sent besides the form's fields (None: not sent)."""

    honeypot: str | None = None
    stamp: str | None = None
    captcha: str | None = None


def split_guard_fields(fields: dict[str, Any]) -> tuple[dict[str, Any], GuardFields]:
    """The form's own fields, and the guard fields taken out of them (a non-text value counts as filled in)."""

    def text(value: Any) -> str | None:
        if value is None:
            return None
        return value[:MAX_GUARD_FIELD_CHARS] if isinstance(value, str) else str(value)[:MAX_GUARD_FIELD_CHARS]

    own = {name: value for name, value in fields.items() if name not in GUARD_FIELDS}
    return own, GuardFields(*(text(fields.get(name)) for name in GUARD_FIELDS))


class FormStamps:
    """Signed render times: `<ms since the epoch>.<HMAC-SHA256, hex>` over the form ID and the time."""

    def __init__(self, secret: str):
        # A key of its own: a stamp is no CSAT token, whatever the secret is shared with.
        self._key = hmac.new(secret.encode(), b"switchboard.form-stamp.v1", hashlib.sha256).digest()

    def _mac(self, form_id: str, millis: int) -> str:
        return hmac.new(self._key, f"{form_id}\x00{millis}".encode(), hashlib.sha256).hexdigest()

    def issue(self, form_id: str, now: datetime) -> str:
        millis = int(now.timestamp() * 1000)
        return f"{millis}.{self._mac(form_id, millis)}"

    def age_seconds(self, stamp: str, form_id: str, now: datetime) -> float | None:
        """How long ago the stamp was issued for this form, or None when it is forged or damaged (a stamp
        of the future, beyond a second of clock skew between instances, is forged too)."""
        millis_text, dot, mac = stamp.partition(".")
        if not dot or not millis_text.isdigit() or len(millis_text) > 15:
            return None
        millis = int(millis_text)
        if not same_secret(mac, self._mac(form_id, millis)):
            return None
        age = now.timestamp() - millis / 1000
        return age if age >= -1 else None


@dataclass(frozen=True)
class Suspect:
    """Spam: kept in quarantine with this reason."""

    reason_code: str
    reason: str


@dataclass(frozen=True)
class Missing:
    """Refused (422): the page always sends this field. `text_id`: the catalogue's ID of what the customer
    is told (shared/locales); `kind`: the machine-readable error type."""

    field: str
    text_id: str
    kind: str


def judge(
    guard: GuardFields, stamp_age: float | None, captcha_passed: bool | None, config: Spam
) -> Suspect | Missing | None:
    """The verdict on a form post; None: a person.

    `stamp_age`: FormStamps.age_seconds of the stamp sent (None when none was sent or it is forged);
    `captcha_passed`: the provider's siteverify answer (None when no captcha is configured or no token was sent).
    The first that applies: honeypot filled, stamp forged or expired, sent too fast, stamp missing (when
    required), captcha token missing, captcha failed.
    """
    if config.honeypot and guard.honeypot:
        return Suspect(HONEYPOT, f"the hidden field {HONEYPOT_FIELD!r} was filled in")
    if guard.stamp is not None:
        if stamp_age is None:
            return Suspect(BAD_STAMP, "the form's render stamp is forged or damaged")
        if stamp_age > config.stamp_max_age.total_seconds():
            return Suspect(BAD_STAMP, f"the form's render stamp is {stamp_age:.0f} s old")
        if stamp_age < config.min_fill_time.total_seconds():
            return Suspect(TOO_FAST, f"sent {stamp_age:.2f} s after the form was rendered")
    elif config.stamp == "required":
        return Missing(STAMP_FIELD, "refusal.form_stamp", "missing")
    if config.captcha is not None:
        if not guard.captcha:
            return Missing(CAPTCHA_FIELD, "refusal.captcha", "missing")
        if captcha_passed is False:
            return Suspect(CAPTCHA_FAILED, f"the {config.captcha.provider} captcha was not passed")
    return None
