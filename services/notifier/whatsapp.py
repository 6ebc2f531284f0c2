"""Messages to customers on WhatsApp: agent replies, acknowledgements and rating requests, through the
Cloud API's `POST /{phone-number-id}/messages` (shared.whatsapp_graph).

Whether a free-form message may go at all (the 24-hour customer-service window) is decided when the
delivery is planned (services.notifier.plan, shared.whatsapp_window); a message WhatsApp still refuses
for the window (error 131047, the time passed while it waited) fails as `Refused`. Each message carries
its ticket, purpose and ticket message (`biz_opaque_callback_data`), so that the statuses WhatsApp
reports for it are recorded on its ticket (services.intake.whatsapp).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from services.notifier.csat_asks import chat_text
from services.notifier.customers import CsatLink, _NoDigests
from services.notifier.deliveries import Sent
from services.notifier.errors import RateLimited, Refused
from services.notifier.pacing import Pacing
from services.notifier.plan import Delivery
from shared.settings import Settings
from shared.whatsapp_graph import GraphError, Tracking, WhatsAppGraph

logger = logging.getLogger(__name__)

# A text message's body holds at most 4096 characters (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages#text-object).
MAX_TEXT_CHARS = 4096
# Cloud API throughput is 80 messages per second per number by default; one user takes about one message
# every 6 seconds before the pair rate limit (131056), bursts allowed.
MESSAGES_PER_SECOND = 80.0
MESSAGES_PER_SECOND_PER_USER = 1 / 6
# After a rate limit Graph gives no retry time: wait this long.
RATE_LIMIT_SECONDS = 10.0


def whatsapp_sender(settings: Settings) -> WhatsAppGraph | None:
    """The Graph client for replies, or None (and a log line saying why) when WhatsApp is not configured."""
    missing = [name for name in settings.whatsapp_missing() if name.endswith(("ACCESS_TOKEN", "PHONE_NUMBER_ID"))]
    if missing:
        logger.warning("WhatsApp replies are off: %s not set", " and ".join(missing))
        return None
    return WhatsAppGraph(settings)


def split_for_whatsapp(text: str, limit: int = MAX_TEXT_CHARS) -> list[str]:
    """The text in messages WhatsApp accepts, cut at line breaks where possible."""
    chunks, rest = [], text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit)
        cut = cut if cut > 0 else limit
        chunks.append(rest[:cut])
        rest = rest[cut:].lstrip("\n")
    return [*chunks, rest] if rest or not chunks else chunks


class WhatsAppTransport(_NoDigests):
    def __init__(self, graph: WhatsAppGraph | None, csat_link: CsatLink | None = None):
        self.graph = graph
        self.csat_link = csat_link
        self.pacing = Pacing(MESSAGES_PER_SECOND, MESSAGES_PER_SECOND_PER_USER, burst_per_key=3)

    @property
    def enabled(self) -> bool:
        return self.graph is not None

    async def send(self, delivery: Delivery, thread_ts: str | None) -> Sent | None:
        assert self.graph is not None, "the scheduler sends only through enabled transports"
        if delivery.route is None:
            return None
        if (text := chat_text(delivery.text, delivery.csat, self.csat_link)) is None:
            return None
        tracking = Tracking(delivery.ticket_id, delivery.purpose, delivery.message_id).encode()
        sent = []
        for index, chunk in enumerate(split_for_whatsapp(text)):
            await self.pacing.wait(delivery.route.address)
            reply_to = delivery.route.reply_to_id if index == 0 and delivery.purpose == "reply" else None
            try:
                sent.append(
                    await self.graph.send_text(delivery.route.address, chunk, reply_to=reply_to, tracking=tracking)
                )
            except GraphError as error:
                if error.rate_limited:
                    raise RateLimited(RATE_LIMIT_SECONDS) from error
                if error.transient:
                    raise
                raise Refused(f"WhatsApp refused the message: {error}") from error
        return Sent(sent[0], datetime.now(UTC))

    async def aclose(self) -> None:
        if self.graph is not None:
            await self.graph.aclose()
