"""WhatsApp's customer-service window, in pure code.

A business may send a free-form message to a WhatsApp user only within 24 hours of that user's last
message to it; outside the window only an approved message template is delivered (WhatsApp Business
Platform, "Customer service windows": https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-messages#customer-service-windows).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

WINDOW = timedelta(hours=24)


def in_window(customer_wrote_at: datetime | None, at: datetime) -> bool:
    """Whether a free-form message sent at `at` is inside the window the customer's last message opened.

    `customer_wrote_at` None (the customer never wrote on WhatsApp, e.g. a logged call's number): no window.
    Both times are timezone-aware. The window's end itself is outside it.
    """
    return customer_wrote_at is not None and customer_wrote_at <= at + _CLOCK_SKEW and at < customer_wrote_at + WINDOW


# Our clock and WhatsApp's may disagree by a little: a message stamped slightly in our future still opens the window.
_CLOCK_SKEW = timedelta(minutes=5)


def window_closed_text(customer_wrote_at: datetime | None, template: tuple[str, str] | None) -> str:
    """Why a reply was held, for the agent: the window and, when configured, the template to use
    (`template`: its name and language)."""
    when = (
        f"the customer last wrote on WhatsApp at {customer_wrote_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC,"
        " more than 24 hours ago"
        if customer_wrote_at is not None
        else "the customer has not written on WhatsApp"
    )
    use = (
        f"use the approved WhatsApp template `{template[0]}` ({template[1]}) to reach them"
        if template is not None
        else "only an approved message template can reach them (none is configured: `whatsapp.template`)"
    )
    return f"the reply is held: {when} (WhatsApp's 24-hour window); {use}, or answer again once they write"
