"""A contact's identities: the strings that prove who wrote, across channels. Pure."""

from __future__ import annotations

import phonenumbers

from shared.events import Sender


def normalise_email(email: str) -> str:
    return email.strip().lower()


def e164(phone: str) -> str | None:
    """The phone number in E.164 form, or None when it is not an international number."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def identities_of(sender: Sender) -> list[str]:
    """Every identity the sender proved, strongest first (the first known one names the contact)."""
    found = []
    if sender.email:
        found.append(f"email:{normalise_email(sender.email)}")
    if sender.phone and (number := e164(sender.phone)):
        found.append(f"phone:{number}")
    if sender.telegram_user_id is not None:
        found.append(f"telegram:{sender.telegram_user_id}")
    if sender.wecom_external_userid:
        found.append(f"wecom:{sender.wecom_external_userid}")
    if sender.slack_user_id:
        found.append(f"slack:{sender.slack_user_id}")
    return found
