"""The Telegram webhook in-process against the real broker and Redis, and replies out, both
talking to a fake Telegram Bot API over real HTTP."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr

from services.intake.core import Intake, IntakeProcess
from services.intake.telegram import GREETING, NEW_TICKET_PROMPT, SECRET_HEADER, telegram_routes
from services.notifier.errors import RateLimited, Refused
from services.notifier.telegram import TelegramSender
from shared import i18n
from shared.events import InboundMessage, ReplyRoute
from shared.ids import is_ticket_id
from shared.settings import Settings
from shared.topics import INBOUND, Topics
from tests.conftest import TELEGRAM_SECRET as WEBHOOK_SECRET
from tests.conftest import TELEGRAM_TOKEN as BOT_TOKEN
from tests.fakes.telegram_api import FakeTelegramApi
from tests.support import in_process_client, read_topic, topic_size

pytestmark = pytest.mark.integration

CHAT_ID = 4242
ANA = {"id": CHAT_ID, "is_bot": False, "first_name": "Ana", "last_name": "Lima", "username": "ana_l"}
SENT = 1_700_000_000


def telegram_update(update_id: int, message_id: int, *, kind: str = "message", **fields: Any) -> dict[str, Any]:
    message = {
        "message_id": message_id,
        "from": ANA,
        "chat": {"id": CHAT_ID, "type": "private", "first_name": "Ana"},
        "date": SENT + message_id,
        **fields,
    }
    return {"update_id": update_id, kind: message}


@pytest.fixture
def telegram_settings(settings: Settings, fake_telegram: FakeTelegramApi) -> Settings:
    return settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(BOT_TOKEN),
            "telegram_webhook_secret": SecretStr(WEBHOOK_SECRET),
            "telegram_api_url": fake_telegram.base_url,
        }
    )


@pytest.fixture
def process(telegram_settings: Settings) -> IntakeProcess:
    return IntakeProcess("intake-http", telegram_settings)


@pytest.fixture
def intake(process: IntakeProcess) -> Intake:
    return process.intake


@pytest.fixture
async def client(process: IntakeProcess, telegram_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = process.app()
    router = telegram_routes(process.intake, telegram_settings)
    assert router is not None
    app.include_router(router)
    async with in_process_client(app) as client:
        yield client


async def deliver(
    client: httpx.AsyncClient, update: dict[str, Any], secret: str | None = WEBHOOK_SECRET
) -> httpx.Response:
    """What Telegram does: POST the update with the secret header."""
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    return await client.post("/v1/telegram/webhook", json=update, headers=headers)


def inbound_topic(settings: Settings) -> str:
    return Topics(settings.topic_prefix).name(INBOUND)


async def published(settings: Settings, count: int) -> list[InboundMessage]:
    records = await read_topic(settings.kafka_bootstrap, inbound_topic(settings), at_least=count)
    assert len(records) == count, f"expected {count} inbound messages, found {len(records)}"
    return sorted((InboundMessage.model_validate_json(record.value) for record in records), key=lambda m: m.received_at)


async def nothing_published(settings: Settings) -> bool:
    return await topic_size(settings.kafka_bootstrap, inbound_topic(settings)) == 0


# --- The webhook ----------------------------------------------------------------------------------


async def test_a_text_message_becomes_one_inbound_message(client, telegram_settings):
    response = await deliver(client, telegram_update(1, 10, text="My order never arrived"))
    assert response.status_code == 200, response.text
    [message] = await published(telegram_settings, 1)
    assert is_ticket_id(message.ticket_id)
    assert message.channel == "telegram" and message.source == "telegram" and message.kind == "message"
    assert message.text == "My order never arrived" and message.subject is None
    assert message.channel_message_id == f"{CHAT_ID}:10"
    assert message.sender.telegram_user_id == CHAT_ID and message.sender.telegram_username == "ana_l"
    assert message.sender.name == "Ana Lima"
    assert message.reply_route == ReplyRoute(channel="telegram", address=str(CHAT_ID), reply_to_id="10")
    assert message.received_at.timestamp() == SENT + 10


async def test_a_redelivered_update_keeps_its_ticket_and_message_id(client, telegram_settings):
    update = telegram_update(1, 10, text="Hello?")
    assert (await deliver(client, update)).status_code == 200
    assert (await deliver(client, update)).status_code == 200
    first, again = await published(telegram_settings, 2)
    assert (again.ticket_id, again.message_id) == (first.ticket_id, first.message_id)


async def test_one_chat_stays_on_one_ticket_until_the_customer_says_new(client, telegram_settings, fake_telegram):
    await deliver(client, telegram_update(1, 10, text="First question"))
    await deliver(client, telegram_update(2, 11, text="More details"))
    await deliver(client, telegram_update(3, 12, text="/new The app crashes too"))
    await deliver(client, telegram_update(4, 13, text="It crashes on login"))
    first, second, opened_anew, continued = await published(telegram_settings, 4)
    assert second.ticket_id == first.ticket_id
    assert opened_anew.ticket_id != first.ticket_id and opened_anew.text == "The app crashes too"
    assert continued.ticket_id == opened_anew.ticket_id
    assert not fake_telegram.calls_to("sendMessage")


async def test_new_alone_makes_the_next_message_open_a_ticket(client, telegram_settings, fake_telegram):
    await deliver(client, telegram_update(1, 10, text="First question"))
    assert (await deliver(client, telegram_update(2, 11, text="/new"))).status_code == 200
    [prompt] = await fake_telegram.wait_for_calls("sendMessage")
    assert prompt.args["chat_id"] == CHAT_ID and prompt.args["text"] == i18n.texts("en")(NEW_TICKET_PROMPT)
    await deliver(client, telegram_update(3, 12, text="Another topic"))
    first, second = await published(telegram_settings, 2)
    assert second.ticket_id != first.ticket_id


async def test_an_edit_joins_the_ticket_of_the_message_it_edits(client, telegram_settings):
    await deliver(client, telegram_update(1, 10, text="Order 12 is late"))
    await deliver(client, telegram_update(2, 11, text="/new Another thing"))
    edit = telegram_update(3, 10, kind="edited_message", text="Order 13 is late", edit_date=SENT + 500)
    assert (await deliver(client, edit)).status_code == 200
    original, _, edited = await published(telegram_settings, 3)
    assert edited.kind == "edit" and edited.edit_of == original.channel_message_id
    assert edited.ticket_id == original.ticket_id and edited.text == "Order 13 is late"


@pytest.mark.parametrize("secret", [None, "wrong-secret", ""], ids=["missing", "wrong", "empty"])
async def test_a_bad_secret_is_refused_and_nothing_happens(client, telegram_settings, fake_telegram, secret):
    response = await deliver(client, telegram_update(1, 10, text="/start"), secret=secret)
    assert response.status_code == 401
    assert await nothing_published(telegram_settings)
    assert fake_telegram.calls == []


async def test_a_photo_is_stored_by_content_hash_and_referenced(client, telegram_settings, fake_telegram):
    photo = b"\x89PNG\r\n\x1a\n the full-size photo"
    fake_telegram.add_file("photo-large", photo, "photos/file_1.jpg")
    sizes = [
        {"file_id": "photo-small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 900},
        {"file_id": "photo-large", "file_unique_id": "l", "width": 1280, "height": 1280, "file_size": len(photo)},
    ]
    response = await deliver(client, telegram_update(1, 10, photo=sizes, caption="The box arrived crushed"))
    assert response.status_code == 200, response.text
    [message] = await published(telegram_settings, 1)
    assert message.text == "The box arrived crushed"
    [attachment] = message.attachments
    assert attachment.sha256 == hashlib.sha256(photo).hexdigest()
    assert attachment.content_type == "image/jpeg" and attachment.size == len(photo)
    stored = telegram_settings.data_dir / "attachments" / attachment.sha256[:2] / attachment.sha256[2:4]
    assert (stored / attachment.sha256).read_bytes() == photo
    assert [call.args["file_id"] for call in fake_telegram.calls_to("getFile")] == ["photo-large"]


async def test_a_refused_file_is_named_in_the_text_and_never_downloaded(client, telegram_settings, fake_telegram):
    document = {"file_id": "exe", "file_name": "invoice.exe", "mime_type": "application/octet-stream", "file_size": 10}
    response = await deliver(client, telegram_update(1, 10, document=document, caption="my invoice"))
    assert response.status_code == 200
    [message] = await published(telegram_settings, 1)
    assert message.attachments == []
    assert message.text.startswith("my invoice\n[attachment refused: invoice.exe")
    assert fake_telegram.calls_to("getFile") == []


async def test_start_is_greeted_and_opens_no_ticket(client, telegram_settings, fake_telegram):
    assert (await deliver(client, telegram_update(1, 10, text="/start"))).status_code == 200
    [greeting] = await fake_telegram.wait_for_calls("sendMessage")
    assert greeting.args["chat_id"] == CHAT_ID and greeting.args["text"] == i18n.texts("en")(GREETING)
    assert await nothing_published(telegram_settings)


async def test_a_chinese_client_is_greeted_in_chinese(client, telegram_settings, fake_telegram):
    chinese = {**ANA, "language_code": "zh-hans"}
    assert (await deliver(client, telegram_update(1, 10, text="/start", **{"from": chinese}))).status_code == 200
    [greeting] = await fake_telegram.wait_for_calls("sendMessage")
    assert greeting.args["text"] == i18n.texts("zh-Hans")(GREETING)
    assert greeting.args["text"].startswith("您好！请在这里写下您的问题")


async def test_a_failed_greeting_still_answers_telegram(client, telegram_settings, fake_telegram):
    fake_telegram.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    assert (await deliver(client, telegram_update(1, 10, text="/start"))).status_code == 200


@pytest.mark.parametrize(
    "update",
    [
        telegram_update(1, 10, text="hello group", chat={"id": -100200, "type": "supergroup", "title": "Fans"}),
        {"update_id": 2, "callback_query": {"id": "c", "from": ANA, "chat_instance": "i", "data": "yes"}},
        {"update_id": 3, "message": {"message_id": "not a number"}},
        ["not", "an", "update"],
    ],
    ids=["group-chat", "callback-query", "malformed-message", "not-an-object"],
)
async def test_updates_without_a_customer_message_are_answered_200_and_dropped(client, telegram_settings, update):
    assert (await deliver(client, update)).status_code == 200
    assert await nothing_published(telegram_settings)


async def test_a_body_that_is_not_json_is_400(client, telegram_settings):
    response = await client.post(
        "/v1/telegram/webhook",
        content=b"{not json",
        headers={SECRET_HEADER: WEBHOOK_SECRET, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert await nothing_published(telegram_settings)


async def test_kafka_down_is_503_so_that_telegram_redelivers(client, intake, monkeypatch):
    async def broker_down(message: InboundMessage) -> None:
        raise KafkaConnectionError("broker unreachable")

    monkeypatch.setattr(intake, "publish", broker_down)
    assert (await deliver(client, telegram_update(1, 10, text="Anyone?"))).status_code == 503


def test_telegram_is_off_without_a_webhook_secret(intake, telegram_settings, caplog):
    off = telegram_settings.model_copy(update={"telegram_webhook_secret": None})
    with caplog.at_level(logging.WARNING):
        assert telegram_routes(intake, off) is None
    assert "Telegram is off: SWITCHBOARD_TELEGRAM_WEBHOOK_SECRET not set" in caplog.text


# --- Replies out ----------------------------------------------------------------------------------


@pytest.fixture
async def sender(fake_telegram: FakeTelegramApi, tmp_path) -> AsyncIterator[TelegramSender]:
    settings = Settings(
        telegram_bot_token=SecretStr(BOT_TOKEN), telegram_api_url=fake_telegram.base_url, data_dir=tmp_path
    )
    sender = TelegramSender(settings)
    try:
        yield sender
    finally:
        await sender.aclose()


ROUTE = ReplyRoute(channel="telegram", address=str(CHAT_ID), reply_to_id="10")


async def test_a_reply_answers_the_customers_message(sender, fake_telegram):
    message_id = await sender.send(ROUTE, "We have refunded you.")
    [call] = fake_telegram.calls_to("sendMessage")
    assert call.args["chat_id"] == CHAT_ID and call.args["text"] == "We have refunded you."
    assert call.args["reply_parameters"] == {"message_id": 10, "allow_sending_without_reply": True}
    assert message_id == str(call.response["result"]["message_id"])


async def test_flood_control_holds_the_chat_for_the_time_telegram_asks(sender, fake_telegram):
    fake_telegram.rate_limit_next("sendMessage", count=1, retry_after=30)
    with pytest.raises(RateLimited) as limited:
        await sender.send(ROUTE, "Sorry for the wait.")
    assert limited.value.retry_after == 30
    [call] = fake_telegram.calls_to("sendMessage")
    assert call.status == 429 and call.response["parameters"] == {"retry_after": 30}


@pytest.mark.parametrize(
    ("error_code", "description", "reason"),
    [
        (403, "Forbidden: bot was blocked by the user", "bot was blocked by the user"),
        (400, "Bad Request: chat not found", "Chat not found"),
    ],
)
async def test_a_blocked_bot_or_unknown_chat_is_a_permanent_failure(
    sender, fake_telegram, error_code, description, reason
):
    fake_telegram.fail_next("sendMessage", error_code, description)
    with pytest.raises(Refused, match=reason):
        await sender.send(ROUTE, "Hello?")


async def test_a_long_reply_goes_out_in_several_messages(sender, fake_telegram):
    await sender.send(ROUTE, ("a" * 3000) + "\n" + ("b" * 3000))
    first, second = fake_telegram.calls_to("sendMessage")
    assert (first.args["text"], second.args["text"]) == ("a" * 3000, "b" * 3000)
    assert first.reply_to_message_id == 10 and second.reply_to_message_id is None


# --- The fake answers like Telegram -------------------------------------------------------------------


async def test_the_fake_answers_in_telegrams_shapes(fake_telegram):
    def method(name: str, token: str = BOT_TOKEN) -> str:
        return f"{fake_telegram.base_url}{token}/{name}"

    async with httpx.AsyncClient() as api:
        me = await api.get(method("getMe"))
        assert me.status_code == 200 and me.json()["ok"] is True and me.json()["result"]["is_bot"] is True
        wrong_token = await api.post(method("getMe", token="987654321:AAwrong-token"))
        assert wrong_token.status_code == 401
        assert wrong_token.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        assert (await api.post(method("getMe", token="not-a-token"))).status_code == 404
        assert (await api.post(method("noSuchMethod"))).json()["error_code"] == 404
        empty = await api.post(method("sendMessage"), json={"chat_id": CHAT_ID, "text": ""})
        assert empty.status_code == 400 and empty.json()["description"] == "Bad Request: message text is empty"
        webhook = {"url": "https://example.com/v1/telegram/webhook", "secret_token": WEBHOOK_SECRET}
        assert (await api.post(method("setWebhook"), data=webhook)).json() == {"ok": True, "result": True}
        assert fake_telegram.webhook == webhook
        assert (await api.post(method("deleteWebhook"))).json()["result"] is True
        assert fake_telegram.webhook is None


async def test_the_fake_answers_button_presses_and_edits_keyboards_like_telegram(fake_telegram):
    def method(name: str) -> str:
        return f"{fake_telegram.base_url}{BOT_TOKEN}/{name}"

    keyboard = {"inline_keyboard": [[{"text": "5", "callback_data": "csat:SB-1042:1:5"}]]}
    async with httpx.AsyncClient() as api:
        rating_request = {"chat_id": CHAT_ID, "text": "Rate", "reply_markup": keyboard}
        sent = await api.post(method("sendMessage"), json=rating_request)
        message_id = sent.json()["result"]["message_id"]
        assert sent.json()["result"]["reply_markup"] == keyboard
        answered = await api.post(method("answerCallbackQuery"), json={"callback_query_id": "q1", "text": "Thanks"})
        assert answered.json() == {"ok": True, "result": True}
        assert (await api.post(method("answerCallbackQuery"), json={})).status_code == 400
        edited = await api.post(method("editMessageReplyMarkup"), json={"chat_id": CHAT_ID, "message_id": message_id})
        assert edited.status_code == 200 and "reply_markup" not in edited.json()["result"]
        assert "reply_markup" not in fake_telegram.message(CHAT_ID, message_id)
        again = await api.post(method("editMessageReplyMarkup"), json={"chat_id": CHAT_ID, "message_id": message_id})
        assert again.json()["description"] == "Bad Request: message is not modified"
        unknown = await api.post(method("editMessageReplyMarkup"), json={"chat_id": CHAT_ID, "message_id": 999})
        assert unknown.json()["description"] == "Bad Request: message to edit not found"
