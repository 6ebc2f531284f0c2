"""The WeCom callback in-process against the real broker and Redis, talking to a fake WeCom API over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.intake.core import IntakeProcess
from services.intake.wecom import WELCOME, cursor_key, wecom_routes
from services.intake.wecom_crypto import WecomCrypto
from shared.config import load_config
from shared.events import InboundMessage, NotificationSent, WecomCursorAdvanced
from shared.publisher import Outgoing, Publisher
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.topics import INBOUND, TICKETS, WECOM, Topics
from shared.wecom_window import window_key
from switchboard.replay import replay_all
from tests.fakes.wecom_api import CORP_ID, ENCODING_AES_KEY, OPEN_KFID, SECRET, TOKEN, FakeWecomApi
from tests.support import in_process_client, read_topic, topic_size

pytestmark = pytest.mark.integration

CUSTOMER = "wmCustomerAna0001"


@pytest.fixture
def fake_wecom() -> Iterator[FakeWecomApi]:
    with FakeWecomApi(page_limit=2) as api:
        yield api


@pytest.fixture
def wecom_settings(settings: Settings, fake_wecom: FakeWecomApi) -> Settings:
    return settings.model_copy(
        update={
            "wecom_corp_id": CORP_ID,
            "wecom_secret": SecretStr(SECRET),
            "wecom_token": SecretStr(TOKEN),
            "wecom_encoding_aes_key": SecretStr(ENCODING_AES_KEY),
            "wecom_api_url": fake_wecom.base_url,
        }
    )


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    process = IntakeProcess("intake-http", settings)
    app = process.app()
    router = wecom_routes(process.intake, settings)
    assert router is not None
    app.include_router(router)
    async with in_process_client(app) as client:
        yield client


@pytest.fixture
async def client(wecom_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(wecom_settings):
        yield client


async def post_callback(client: httpx.AsyncClient, fake: FakeWecomApi, **options) -> httpx.Response:
    query, body = fake.callback(**options)
    return await client.post("/v1/wecom/callback", params=query, content=body)


async def inbound(settings: Settings, count: int) -> list[InboundMessage]:
    records = await read_topic(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(INBOUND), at_least=count)
    return [InboundMessage.model_validate_json(record.value) for record in records]


async def test_url_verification_echoes_the_decrypted_echostr(client, fake_wecom):
    response = await client.get("/v1/wecom/callback", params=fake_wecom.verification("1616140317555161061"))
    assert response.status_code == 200 and response.text == "1616140317555161061"
    forged = {**fake_wecom.verification("x"), "msg_signature": "0" * 40}
    assert (await client.get("/v1/wecom/callback", params=forged)).status_code == 403


async def test_customer_messages_of_every_kind_become_one_ticket_and_the_cursor_moves_after_kafka(
    client, fake_wecom, wecom_settings
):
    fake_wecom.add_media("MEDIA_IMG", b"\x89PNG fake image", "image/png", "receipt.png")
    fake_wecom.add_media("MEDIA_VOICE", b"#!AMR fake voice", "audio/amr", "voice.amr")
    fake_wecom.add_media("MEDIA_EXE", b"MZ fake", "application/octet-stream", "setup.exe")
    fake_wecom.add_message(CUSTOMER, "text", {"content": "My order never arrived"}, msgid="m1")
    fake_wecom.add_message(CUSTOMER, "image", {"media_id": "MEDIA_IMG"}, msgid="m2")
    fake_wecom.add_message(CUSTOMER, "voice", {"media_id": "MEDIA_VOICE"}, msgid="m3")
    fake_wecom.add_message(CUSTOMER, "file", {"media_id": "MEDIA_EXE"}, msgid="m4")
    fake_wecom.add_message(
        CUSTOMER, "location", {"latitude": 23.1, "longitude": 113.3, "name": "Canton Tower", "address": "Guangzhou"}
    )
    fake_wecom.add_message(CUSTOMER, "link", {"title": "Tracking", "desc": "Parcel", "url": "https://example.com/t"})
    # A servicer's own message in the WeCom client is not a customer's.
    fake_wecom.add_message(CUSTOMER, "text", {"content": "agent typed in WeCom"}, origin=5)

    assert (await post_callback(client, fake_wecom)).status_code == 200
    messages = await inbound(wecom_settings, 6)
    assert len(messages) == 6
    assert len({message.ticket_id for message in messages}) == 1, "one open ticket per conversation"
    first = messages[0]
    assert first.channel == "wecom" and first.text == "My order never arrived"
    assert first.sender.wecom_external_userid == CUSTOMER
    assert first.reply_route.address == f"{OPEN_KFID}:{CUSTOMER}" and first.reply_route.reply_to_id == "m1"
    by_id = {message.channel_message_id: message for message in messages}
    [image] = by_id["m2"].attachments
    assert image.content_type == "image/png" and image.filename == "receipt.png"
    assert by_id["m3"].attachments[0].content_type == "audio/amr"
    assert not by_id["m4"].attachments and "attachment refused" in by_id["m4"].text
    texts = [message.text for message in messages]
    assert "[location: Canton Tower, Guangzhou (23.1, 113.3)]" in texts
    assert "[link: Tracking]\nParcel\nhttps://example.com/t" in texts

    # Three pages of two: the cursor is where the last page ended, and on Kafka too.
    redis = connect_redis(wecom_settings.redis_url)
    try:
        assert await redis.get(cursor_key(OPEN_KFID)) == "cur-7"
        assert await redis.hget(window_key(f"{OPEN_KFID}:{CUSTOMER}"), "sent") == "0"
    finally:
        await redis.aclose()
    cursors = await read_topic(
        wecom_settings.kafka_bootstrap, Topics(wecom_settings.topic_prefix).name(WECOM), at_least=4
    )
    assert [WecomCursorAdvanced.model_validate_json(r.value).cursor for r in cursors] == [
        "cur-2",
        "cur-4",
        "cur-6",
        "cur-7",
    ]

    # The same callback again (WeCom retries): nothing new to fetch, nothing published.
    assert (await post_callback(client, fake_wecom)).status_code == 200
    assert (await post_callback(client, fake_wecom)).status_code == 200
    topic = Topics(wecom_settings.topic_prefix).name(INBOUND)
    assert await topic_size(wecom_settings.kafka_bootstrap, topic) == 6


async def test_a_message_fetched_again_keeps_its_ticket_and_message_id(client, fake_wecom, wecom_settings):
    fake_wecom.add_message(CUSTOMER, "text", {"content": "hello"}, msgid="same")
    assert (await post_callback(client, fake_wecom)).status_code == 200
    redis = connect_redis(wecom_settings.redis_url)
    try:
        # As after a crash between publishing and moving the cursor.
        await redis.delete(cursor_key(OPEN_KFID))
    finally:
        await redis.aclose()
    assert (await post_callback(client, fake_wecom)).status_code == 200
    first, again = await inbound(wecom_settings, 2)
    assert (first.ticket_id, first.message_id) == (again.ticket_id, again.message_id)


async def test_enter_session_is_welcomed_and_opens_no_ticket(client, fake_wecom, wecom_settings):
    fake_wecom.add_enter_session(CUSTOMER, "WELCOME_CODE_1")
    assert (await post_callback(client, fake_wecom)).status_code == 200
    [welcome] = fake_wecom.calls_to("kf/send_msg_on_event")
    assert welcome.args["code"] == "WELCOME_CODE_1" and welcome.args["text"]["content"] == WELCOME
    assert await topic_size(wecom_settings.kafka_bootstrap, Topics(wecom_settings.topic_prefix).name(INBOUND)) == 0


async def test_an_expired_access_token_is_fetched_again(client, fake_wecom, wecom_settings):
    fake_wecom.add_message(CUSTOMER, "text", {"content": "one"})
    assert (await post_callback(client, fake_wecom)).status_code == 200
    fake_wecom.expire_tokens()
    fake_wecom.add_message(CUSTOMER, "text", {"content": "two"})
    assert (await post_callback(client, fake_wecom)).status_code == 200
    assert [m.text for m in await inbound(wecom_settings, 2)] == ["one", "two"]
    assert len(fake_wecom.calls_to("gettoken")) == 2, "cached, then fetched again after 42001"


@pytest.mark.parametrize(
    "refusal",
    ["forged signature", "wrong key", "wrong corp ID", "stale timestamp"],
)
async def test_refused_callbacks_publish_nothing_and_fetch_nothing(client, fake_wecom, wecom_settings, refusal):
    fake_wecom.add_message(CUSTOMER, "text", {"content": "hello"})
    options = {
        "forged signature": {"signature": hashlib.sha1(b"forged").hexdigest()},
        "wrong key": {"crypto": WecomCrypto(TOKEN, "B" * 43, CORP_ID)},
        "wrong corp ID": {"crypto": WecomCrypto(TOKEN, ENCODING_AES_KEY, "wwSomeoneElse")},
        "stale timestamp": {"timestamp": int(time.time()) - 3600},
    }[refusal]
    assert (await post_callback(client, fake_wecom, **options)).status_code == 403
    assert not fake_wecom.calls_to("kf/sync_msg")
    assert await topic_size(wecom_settings.kafka_bootstrap, Topics(wecom_settings.topic_prefix).name(INBOUND)) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><Encrypt>",
        b"not xml at all",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<xml><Encrypt>&b;</Encrypt></xml>",
        b"<xml><Encrypt>" + b"A" * (70 * 1024) + b"</Encrypt></xml>",
    ],
    ids=["truncated", "not-xml", "entity-expansion", "oversized"],
)
async def test_malformed_or_hostile_xml_is_refused_without_a_crash(client, fake_wecom, body):
    query, _ = fake_wecom.callback()
    response = await client.post("/v1/wecom/callback", params=query, content=body)
    assert response.status_code == 403
    assert (await client.get("/healthz")).status_code == 200


async def test_two_instances_syncing_at_once_take_each_message_once(fake_wecom, wecom_settings):
    for index in range(9):
        fake_wecom.add_message(CUSTOMER, "text", {"content": f"message {index}"}, msgid=f"c{index}")
    clients = [_client(wecom_settings), _client(wecom_settings)]
    first, second = [await anext(generator) for generator in clients]
    try:
        responses = await asyncio.gather(*(post_callback(c, fake_wecom) for c in (first, second, first, second)))
        assert {response.status_code for response in responses} == {200}
        messages = await inbound(wecom_settings, 9)
        assert sorted(message.channel_message_id for message in messages) == [f"c{index}" for index in range(9)]
        topic = Topics(wecom_settings.topic_prefix).name(INBOUND)
        assert await topic_size(wecom_settings.kafka_bootstrap, topic) == 9, "no message taken twice"
    finally:
        for generator in clients:
            await generator.aclose()


async def test_without_credentials_wecom_is_off_and_says_so(settings, caplog):
    assert wecom_routes(IntakeProcess("intake-http", settings).intake, settings) is None
    assert "WeChat Customer Service (WeCom) is off" in caplog.text


async def test_replay_rebuilds_the_cursor_and_the_reply_windows_messages(client, fake_wecom, wecom_settings):
    fake_wecom.add_message(CUSTOMER, "text", {"content": "one"}, send_time=1_700_000_000)
    fake_wecom.add_message(CUSTOMER, "text", {"content": "two"}, send_time=1_700_000_100)
    fake_wecom.add_message(CUSTOMER, "text", {"content": "three"}, send_time=1_700_000_200)
    assert (await post_callback(client, fake_wecom)).status_code == 200
    await inbound(wecom_settings, 3)
    await read_topic(wecom_settings.kafka_bootstrap, Topics(wecom_settings.topic_prefix).name(WECOM), at_least=2)
    # A long reply went out as three messages after the customer's last: all three count in the window.
    [last] = [message for message in await inbound(wecom_settings, 3) if message.text == "three"]
    topics = Topics(wecom_settings.topic_prefix)
    reply = NotificationSent(
        event_id=uuid.uuid4(),
        occurred_at=datetime.fromtimestamp(1_700_000_300, UTC),
        ticket_id=last.ticket_id,
        key="reply-1:reply",
        purpose="reply",
        target=f"wecom:{OPEN_KFID}:{CUSTOMER}",
        messages=3,
    )
    publisher = Publisher(wecom_settings.kafka_bootstrap, client_id="test", registry=CollectorRegistry())
    await publisher.start()
    try:
        await publisher.publish(Outgoing.event(topics.name(TICKETS), reply.ticket_id, reply))
    finally:
        await publisher.stop()
    redis = connect_redis(wecom_settings.redis_url)
    window = window_key(f"{OPEN_KFID}:{CUSTOMER}")
    try:
        await redis.hset(window, "sent", 3)
        before = (await redis.get(cursor_key(OPEN_KFID)), await redis.hgetall(window))
        await redis.delete(cursor_key(OPEN_KFID), window)
        await replay_all(
            wecom_settings.kafka_bootstrap,
            redis,
            wecom_settings.topic_prefix,
            config=load_config(wecom_settings.config),
        )
        assert (await redis.get(cursor_key(OPEN_KFID)), await redis.hgetall(window)) == before
        assert before == ("cur-3", {"customer_at": repr(1_700_000_200.0), "sent": "3"})
    finally:
        await redis.aclose()
