"""Messages to WeChat customers through WeCom's `kf/send_msg`: agent replies, acknowledgements, rating requests.

WeCom lets a business write to a customer only within 48 hours after the customer's last message, and
at most 5 messages (shared.wecom_window). A message outside that window is not sent: the delivery is
skipped with why, which the agent sees on their reply (⚠️ and a message only they see, or a warning in
the ticket's thread), and the customer's next message opens the window again.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from redis.asyncio import Redis

from services.notifier.chunks import split_at_lines
from services.notifier.csat_asks import chat_text
from services.notifier.customers import CsatLink
from services.notifier.deliveries import Sent, Skipped
from services.notifier.errors import RateLimited, Refused
from services.notifier.plan import Delivery
from shared.ids import derived_id
from shared.settings import Settings
from shared.wecom_api import WecomApi, WecomApiError
from shared.wecom_window import MAX_MESSAGES, refusal, we_sent, window_key

logger = logging.getLogger(__name__)

# kf/send_msg's text limit, in bytes of UTF-8 (https://developer.work.weixin.qq.com/document/path/94677).
MAX_TEXT_BYTES = 2048
# errcodes that mean "too many calls": WeCom's frequency limits are per minute.
RATE_LIMITED = frozenset({45009, 45033})
RATE_LIMIT_SECONDS = 60.0


class WecomTransport:
    """The notifier's transport for WeChat Customer Service (target "wecom:<open_kfid>:<external_userid>")."""

    def __init__(self, settings: Settings, redis: Redis, csat_link: CsatLink | None = None):
        self.api = WecomApi(settings, redis) if settings.wecom_corp_id and settings.wecom_secret else None
        if self.api is None:
            logger.warning(
                "WeChat Customer Service replies are off: "
                "SWITCHBOARD_WECOM_CORP_ID and SWITCHBOARD_WECOM_SECRET are not set"
            )
        self.redis = redis
        self.csat_link = csat_link

    @property
    def enabled(self) -> bool:
        return self.api is not None

    async def aclose(self) -> None:
        if self.api is not None:
            await self.api.aclose()

    async def send(self, delivery: Delivery, thread_ts: str | None) -> Sent | Skipped | None:
        """Sends the delivery's text (split at 2048 bytes), or skips it outside the reply window. Raises
        RateLimited, Refused (WeCom refused for good), httpx.HTTPError or WecomApiError(-1) for a retry."""
        assert self.api is not None, "the scheduler sends only through enabled transports"
        route = delivery.route
        if route is None:
            return None
        open_kfid, _, external_userid = route.address.partition(":")
        if (text := chat_text(delivery.text, delivery.csat, self.csat_link)) is None:
            return None
        chunks = split_for_wecom(text)
        customer_at, sent = await self.redis.hmget(window_key(route.address), "customer_at", "sent")
        now = time.time()
        why = refusal(float(customer_at) if customer_at else None, int(sent or 0), now)
        if why is None and int(sent or 0) + len(chunks) > MAX_MESSAGES:
            why = "the reply needs more messages than WeChat's reply window has left; it was not sent: shorten it"
        if why is not None:
            logger.info("WeCom message held: outside the reply window", extra={"key": delivery.key, "why": why})
            return Skipped(why)
        first = None
        for index, chunk in enumerate(chunks):
            body = {
                "touser": external_userid,
                "open_kfid": open_kfid,
                # WeCom's own idempotency: the same delivery sent again is refused as a repeat, not shown twice.
                "msgid": derived_id("wecom.send", f"{delivery.key}:{index}").hex,
                "msgtype": "text",
                "text": {"content": chunk},
            }
            try:
                answer = await self.api.call("kf/send_msg", body)
            except WecomApiError as error:
                if error.errcode in RATE_LIMITED:
                    raise RateLimited(RATE_LIMIT_SECONDS) from error
                if error.errcode == -1:
                    raise
                raise Refused(f"WeCom refused the message: errcode {error.errcode}: {error.errmsg}") from error
            await we_sent(self.redis, route.address, now)
            first = first or str(answer.get("msgid") or body["msgid"])
        return Sent(first, datetime.now(UTC), messages=len(chunks))

    async def send_digest(self, target: str, deliveries: list[Delivery]) -> Sent | None:
        return None

    async def find_sent(self, delivery: Delivery, thread_ts: str | None, since: float) -> str | None:
        return None


def split_for_wecom(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """The text in messages of at most `limit` UTF-8 bytes, cut at line breaks where possible, never inside a
    character."""
    return split_at_lines(text, limit, lambda character: len(character.encode()))
