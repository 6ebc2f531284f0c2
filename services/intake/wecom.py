"""WeChat Customer Service through WeCom (企业微信 微信客服): the callback in, customer messages fetched.

`GET /v1/wecom/callback` answers WeCom's URL verification: the `echostr`, checked and decrypted.
`POST /v1/wecom/callback` takes event callbacks: signed (`msg_signature`), encrypted with the
EncodingAESKey and addressed to our corp ID (services.intake.wecom_crypto). Whatever fails a check
is refused (403) before anything else happens, so nothing reaches Kafka. A `kf_msg_or_event`
callback carries no message, only a Token: intake then fetches the account's new messages with
`kf/sync_msg` (services.intake.wecom_content says what each one is) and publishes them; it answers
200 only after that, and 503 when WeCom or Kafka failed, for WeCom to call again.

No message lost, none taken twice, across restarts and intake-http instances:
- the cursor (`sb:wecom:cursor:<open_kfid>`) moves only after every message of its page is on
  Kafka, and is itself on Kafka (`wecom.cursor_advanced` on the wecom topic), so replay rebuilds it;
- one instance syncs an account at a time (a lease, `sb:wecom:sync-lock:<open_kfid>`); a callback
  that finds the lease held leaves its Token (`sb:wecom:sync-again:<open_kfid>`) and the holder syncs
  again before it lets go, so messages that arrived meanwhile are fetched too;
- a message fetched again (a crash before the cursor moved) keeps its ticket and message ID
  (idempotent by `msgid`), which the router deduplicates.

Conversations: one open ticket per customer and account ("<open_kfid>:<external_userid>"); once that
ticket is closed, the customer's next message opens a follow-up. `enter_session` (the customer
opened the chat) is answered with a welcome through `kf/send_msg_on_event`.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from aiokafka.errors import KafkaError
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from redis.asyncio import Redis

from services.intake.core import PUBLISH_TIMEOUT_SECONDS, Intake, with_refusals
from services.intake.wecom_content import (
    CustomerMessage,
    Greeting,
    Ignored,
    KfCallback,
    WecomMedia,
    kf_callback,
    normalise,
)
from services.intake.wecom_crypto import CallbackRefused, WecomCrypto, xml_fields
from shared.attachments import AttachmentRejected
from shared.conversations import wecom_conversation
from shared.events import Attachment, InboundMessage, ReplyRoute, Sender, WecomCursorAdvanced
from shared.ids import derived_id
from shared.publisher import Outgoing
from shared.settings import Settings
from shared.topics import WECOM, Topics
from shared.wecom_api import MediaTooLarge, WecomApi, WecomApiError
from shared.wecom_window import customer_wrote

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/v1/wecom/callback"
WELCOME = (
    "Hello! Write your question here: text, photos, voice messages and files are all welcome. "
    "You will get a ticket number, and our answers will arrive in this chat."
)
# kf/sync_msg returns at most this many messages per page (WeCom's maximum).
PAGE_LIMIT = 1000
# How long a sync holds off other instances without showing it is alive (renewed with each message).
SYNC_LEASE_MS = 120_000
# A callback's Token lives 10 minutes: one left for the lease holder is no use after that.
TOKEN_TTL_SECONDS = 600

# KEYS[1] the lease, ARGV[1] its holder: let go only of our own lease.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS[1] the lease, KEYS[2] the cursor; ARGV[1] the holder, ARGV[2] the lease (ms), ARGV[3] the new cursor
# or '' (renew only). Returns 0 when the lease is no longer ours: another instance syncs now.
_ADVANCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) end
return 1
"""


def cursor_key(open_kfid: str) -> str:
    return f"sb:wecom:cursor:{open_kfid}"


def lease_key(open_kfid: str) -> str:
    return f"sb:wecom:sync-lock:{open_kfid}"


def again_key(open_kfid: str) -> str:
    return f"sb:wecom:sync-again:{open_kfid}"


class LeaseLost(Exception):
    """Another instance took the account's sync over (ours stalled past the lease): we stop."""


def to_inbound(
    message: CustomerMessage, *, resolution_fields: dict, attachments: list[Attachment], refusals: list[str]
) -> InboundMessage:
    return InboundMessage.received(
        **resolution_fields,
        channel="wecom",
        channel_message_id=message.msgid,
        source=f"wecom:{message.open_kfid}",
        sender=Sender(wecom_external_userid=message.external_userid),
        text=with_refusals(message.text, refusals),
        attachments=attachments,
        reply_route=ReplyRoute(channel="wecom", address=message.address, reply_to_id=message.msgid),
        received_at=message.sent_at,
    )


class KfSync:
    """Fetches an account's new messages onto Kafka, one instance at a time (see the module's docstring)."""

    def __init__(self, intake: Intake, api: WecomApi):
        self.intake = intake
        self.api = api
        self.redis: Redis = intake.redis
        self.topic = Topics(intake.settings.topic_prefix).name(WECOM)
        self._release = self.redis.register_script(_RELEASE)
        self._advance = self.redis.register_script(_ADVANCE)

    async def on_callback(self, callback: KfCallback) -> None:
        """Syncs the account unless another instance is syncing it (which then syncs again for us).

        Raises WecomApiError, httpx.HTTPError, KafkaError, RedisError: the caller answers 503 and
        WeCom calls again, with a new Token.
        """
        open_kfid = callback.open_kfid
        await self.redis.set(again_key(open_kfid), callback.token, ex=TOKEN_TTL_SECONDS)
        while True:
            holder = uuid.uuid4().hex
            if not await self.redis.set(lease_key(open_kfid), holder, nx=True, px=SYNC_LEASE_MS):
                return
            try:
                token = await self.redis.getdel(again_key(open_kfid))
                if token is None:
                    # Another instance synced after our callback came: it fetched what we were told of.
                    return
                try:
                    await self._sync(open_kfid, token, holder)
                except BaseException:
                    # Not done: whoever syncs next (WeCom calls again) may still use this Token.
                    await self.redis.set(again_key(open_kfid), token, ex=TOKEN_TTL_SECONDS, nx=True)
                    raise
            finally:
                await self._release(keys=[lease_key(open_kfid)], args=[holder])
            if not await self.redis.exists(again_key(open_kfid)):
                return

    async def _sync(self, open_kfid: str, token: str, holder: str) -> None:
        cursor = await self.redis.get(cursor_key(open_kfid))
        while True:
            body = {"token": token, "limit": PAGE_LIMIT, "open_kfid": open_kfid}
            if cursor:
                body["cursor"] = cursor
            page = await self.api.call("kf/sync_msg", body)
            items = page.get("msg_list") or []
            for item in items if isinstance(items, list) else []:
                await self._take(normalise(item))
                await self._renew(open_kfid, holder, "")
            next_cursor = page.get("next_cursor")
            if isinstance(next_cursor, str) and next_cursor and next_cursor != cursor:
                event = WecomCursorAdvanced(
                    event_id=derived_id("wecom.cursor", f"{open_kfid}:{next_cursor}"),
                    occurred_at=datetime.now(UTC),
                    open_kfid=open_kfid,
                    cursor=next_cursor,
                )
                # On Kafka first: Redis is the projection, and replay rebuilds it from there.
                await self.intake.publisher.publish(
                    Outgoing.event(self.topic, open_kfid, event), timeout=PUBLISH_TIMEOUT_SECONDS
                )
                await self._renew(open_kfid, holder, next_cursor)
                cursor = next_cursor
            if not page.get("has_more"):
                return

    async def _renew(self, open_kfid: str, holder: str, cursor: str) -> None:
        if not await self._advance(
            keys=[lease_key(open_kfid), cursor_key(open_kfid)], args=[holder, SYNC_LEASE_MS, cursor]
        ):
            raise LeaseLost(open_kfid)

    async def _take(self, message: CustomerMessage | Greeting | Ignored) -> None:
        match message:
            case CustomerMessage():
                await self._accept(message)
            case Greeting():
                await self._greet(message)
            case Ignored(malformed=malformed):
                log = logger.warning if malformed else logger.debug
                log("WeCom message ignored", extra={"msgid": message.msgid, "reason": message.reason})

    async def _accept(self, message: CustomerMessage) -> None:
        attachments, refusals = await self._store(message.media)
        conversation = wecom_conversation(message.address)
        resolution = await self.intake.resolve_ticket(
            f"wecom:msg:{message.msgid}", lookup=[conversation], remember=[conversation]
        )
        await self.intake.publish(
            to_inbound(message, resolution_fields=resolution.fields(), attachments=attachments, refusals=refusals)
        )
        # The reply window opens with each customer message (shared.wecom_window).
        await customer_wrote(self.redis, message.address, message.sent_at.timestamp())

    async def _store(self, media: tuple[WecomMedia, ...]) -> tuple[list[Attachment], list[str]]:
        """The files stored, and why the others were refused. Network errors propagate: the sync is retried."""
        store = self.intake.attachments
        stored, refusals = [], []
        for item in media:
            try:
                store.check(None, item.content_type, 0)
                downloaded = await self.api.media(item.media_id, store.max_bytes)
                generic = downloaded.content_type == "application/octet-stream"
                content_type = item.content_type if generic else downloaded.content_type
                stored.append(store.save(downloaded.content, filename=downloaded.filename, content_type=content_type))
            except (AttachmentRejected, MediaTooLarge) as rejection:
                refusals.append(f"{item.label}: {rejection}")
            except WecomApiError as error:
                # e.g. the media expired (WeCom keeps it 3 days): the message still counts.
                refusals.append(f"{item.label}: WeCom did not give the file ({error.errmsg or error.errcode})")
        return stored, refusals

    async def _greet(self, greeting: Greeting) -> None:
        try:
            await self.api.call(
                "kf/send_msg_on_event",
                {
                    "code": greeting.welcome_code,
                    "msgid": _send_id(greeting.msgid),
                    "msgtype": "text",
                    "text": {"content": WELCOME},
                },
            )
        except (WecomApiError, httpx.HTTPError) as error:
            # A welcome code lives 20 seconds and works once: a missed welcome is not worth a retry.
            logger.warning("could not send the WeCom welcome", extra={"msgid": greeting.msgid, "error": repr(error)})


def _send_id(key: str) -> str:
    """A msgid WeCom accepts (at most 32 of [0-9a-zA-Z_-]) derived from `key`, so that a repeat is refused as one."""
    return derived_id("wecom.send", key).hex


def wecom_crypto(settings: Settings) -> WecomCrypto | None:
    """The callback's crypto, or None (and a log line saying why) when WeCom is not configured."""
    missing = [
        f"SWITCHBOARD_WECOM_{name}"
        for name, value in (
            ("CORP_ID", settings.wecom_corp_id),
            ("SECRET", settings.wecom_secret),
            ("TOKEN", settings.wecom_token),
            ("ENCODING_AES_KEY", settings.wecom_encoding_aes_key),
        )
        if not value
    ]
    if missing:
        logger.warning("WeChat Customer Service (WeCom) is off: %s not set", ", ".join(missing))
        return None
    assert settings.wecom_token and settings.wecom_encoding_aes_key and settings.wecom_corp_id
    return WecomCrypto(
        settings.wecom_token.get_secret_value(),
        settings.wecom_encoding_aes_key.get_secret_value(),
        settings.wecom_corp_id,
    )


def wecom_routes(intake: Intake, settings: Settings) -> APIRouter | None:
    """The callback's router, or None when WeCom is not configured (said at start-up)."""
    crypto = wecom_crypto(settings)
    if crypto is None:
        return None
    api = WecomApi(settings, intake.redis)
    sync = KfSync(intake, api)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        try:
            yield
        finally:
            await api.aclose()

    router = APIRouter(lifespan=lifespan)

    def refuse(error: CallbackRefused) -> HTTPException:
        logger.warning("WeCom callback refused", extra={"reason": str(error)})
        return HTTPException(status_code=403, detail=f"callback refused: {error}")

    @router.get(CALLBACK_PATH)
    async def verify_url(
        msg_signature: str = Query(max_length=64),
        timestamp: str = Query(max_length=16),
        nonce: str = Query(max_length=64),
        echostr: str = Query(max_length=4096),
    ) -> PlainTextResponse:
        try:
            plain = crypto.open(msg_signature, timestamp, nonce, echostr, now=time.time())
        except CallbackRefused as error:
            raise refuse(error) from None
        return PlainTextResponse(plain)

    @router.post(CALLBACK_PATH)
    async def callback(
        request: Request,
        msg_signature: str = Query(max_length=64),
        timestamp: str = Query(max_length=16),
        nonce: str = Query(max_length=64),
    ) -> PlainTextResponse:
        try:
            envelope = xml_fields(await request.body())
            encrypted = envelope.get("Encrypt")
            if not encrypted:
                raise CallbackRefused("no Encrypt element")
            plain = crypto.open(msg_signature, timestamp, nonce, encrypted, now=time.time())
            event = kf_callback(xml_fields(plain), crypto.receive_id)
        except CallbackRefused as error:
            raise refuse(error) from None
        if event is None:
            return PlainTextResponse("success")
        try:
            await sync.on_callback(event)
        except (WecomApiError, httpx.HTTPError, KafkaError, LeaseLost) as error:
            logger.error(
                "WeCom messages not taken; WeCom will call again",
                extra={"open_kfid": event.open_kfid, "error": repr(error)},
            )
            raise HTTPException(status_code=503, detail="temporarily unavailable, retry later") from error
        return PlainTextResponse("success")

    return router
