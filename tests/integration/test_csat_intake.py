"""CSAT ratings into intake on the real broker and Redis: the rating page, Telegram's buttons, the web chat.

Every rating must arrive as one `RateTicket` on the commands topic, keyed by the ticket ID.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from itsdangerous.timed import TimestampSigner
from pydantic import SecretStr
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from services.intake import csat as csat_module
from services.intake import telegram as telegram_module
from services.intake.csat import CSAT_PATH
from services.intake.telegram import SECRET_HEADER
from shared.conversations import (
    chat_channel,
    forget_conversation,
    remember_conversation,
    telegram_chat,
    telegram_message,
)
from shared.csat import CsatSubject, CsatTokens
from shared.events import InboundMessage, RateTicket
from shared.ids import derived_id
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.signed_links import TOKEN_VALID_SECONDS
from shared.topics import COMMANDS, INBOUND, Topics
from tests.conftest import TELEGRAM_SECRET, TELEGRAM_TOKEN
from tests.fakes.telegram_api import FakeTelegramApi
from tests.support import ServiceProcesses, read_topic, topic_size

pytestmark = pytest.mark.integration

CSAT_SECRET = "csat-secret-for-tests"
TOKENS = CsatTokens(CSAT_SECRET)
SUBJECT = CsatSubject("SB-1042", 1)


@pytest.fixture
def all_channels(all_channels: Settings) -> Settings:
    return all_channels.model_copy(update={"csat_secret": SecretStr(CSAT_SECRET)})


def rating_url(token: str) -> str:
    return CSAT_PATH.format(token=token)


def commands_topic(settings: Settings) -> str:
    return Topics(settings.topic_prefix).name(COMMANDS)


async def published_ratings(settings: Settings, count: int) -> list[RateTicket]:
    records = await read_topic(settings.kafka_bootstrap, commands_topic(settings), at_least=count)
    assert len(records) == count, f"expected {count} commands, found {len(records)}"
    for record in records:
        assert record.key.decode() == RateTicket.model_validate_json(record.value).ticket_id
    return [RateTicket.model_validate_json(record.value) for record in records]


async def no_commands(settings: Settings) -> bool:
    return await topic_size(settings.kafka_bootstrap, commands_topic(settings)) == 0


def issued_days_ago(days: float) -> str:
    real = TimestampSigner.get_timestamp
    TimestampSigner.get_timestamp = lambda _: int(time.time() - days * 24 * 3600)
    try:
        return TOKENS.issue(SUBJECT)
    finally:
        TimestampSigner.get_timestamp = real


# --- The rating page ------------------------------------------------------------------------------


async def test_a_valid_link_shows_the_rating_form_for_its_ticket(intake_http):
    response = await intake_http.get(rating_url(TOKENS.issue(SUBJECT)))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "SB-1042" in response.text and response.text.count('type="radio" name="score"') == 5
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_a_link_issued_13_days_ago_still_works(intake_http):
    assert (await intake_http.get(rating_url(issued_days_ago(13)))).status_code == 200


@pytest.mark.parametrize(
    ("token", "status", "says"),
    [
        (CsatTokens("someone else's secret").issue(SUBJECT), 404, "This rating link is not valid"),
        ("not-a-token", 404, "This rating link is not valid"),
        (None, 410, "This rating link has expired"),
    ],
    ids=["forged", "garbage", "expired"],
)
async def test_a_link_that_rates_nothing_says_why_and_records_nothing(intake_http, all_channels, token, status, says):
    token = token or issued_days_ago(TOKEN_VALID_SECONDS / 24 / 3600 + 1)
    page = await intake_http.get(rating_url(token))
    assert page.status_code == status and says in page.text
    posted = await intake_http.post(rating_url(token), data={"score": "5"})
    assert posted.status_code == status
    assert await no_commands(all_channels)


async def test_a_posted_rating_is_one_rate_command_and_rating_again_is_the_same_command(intake_http, all_channels):
    token = TOKENS.issue(SUBJECT)
    first = await intake_http.post(rating_url(token), data={"score": "4", "comment": "Quick & kind <3"})
    assert first.status_code == 200 and "Thank you for your rating" in first.text
    again = await intake_http.post(rating_url(token), json={"score": 1})
    assert again.status_code == 200 and again.json()["ticket_id"] == "SB-1042"
    rated, rated_again = await published_ratings(all_channels, 2)
    assert (rated.ticket_id, rated.resolution, rated.score, rated.comment) == ("SB-1042", 1, 4, "Quick & kind <3")
    assert rated.agent_id == "customer" and rated.event_id == derived_id("csat", "SB-1042", 1)
    # The router applies a command ID once: the first rating stands.
    assert rated_again.event_id == rated.event_id and rated_again.score == 1


async def test_a_bad_score_shows_the_form_again_with_the_error_and_records_nothing(intake_http, all_channels):
    response = await intake_http.post(rating_url(TOKENS.issue(SUBJECT)), data={"score": "9", "comment": "<b>kept</b>"})
    assert response.status_code == 422
    assert "Please choose a score from 1 (poor) to 5 (excellent)." in response.text
    assert "&lt;b&gt;kept&lt;/b&gt;</textarea>" in response.text
    as_json = await intake_http.post(rating_url(TOKENS.issue(SUBJECT)), json={"comment": "no score"})
    assert as_json.status_code == 422 and as_json.json()["detail"][0]["field"] == "score"
    assert await no_commands(all_channels)


async def test_a_rating_kafka_did_not_take_asks_to_send_again(intake_http, monkeypatch):
    async def broker_down(*_):
        raise KafkaConnectionError("broker unreachable")

    monkeypatch.setattr(csat_module, "publish_rating", broker_down)
    response = await intake_http.post(rating_url(TOKENS.issue(SUBJECT)), data={"score": "5"})
    assert response.status_code == 503 and "send it again" in response.text
    as_json = await intake_http.post(rating_url(TOKENS.issue(SUBJECT)), json={"score": 5})
    assert as_json.status_code == 503 and as_json.json() == {"detail": "message queue unavailable, retry later"}
    # In the reader's language (issue 15): the link's `?lang=`, else Accept-Language.
    chinese = {"detail": "消息队列暂时不可用，请稍后重试。"}
    headers = {"Accept-Language": "zh-CN"}
    by_browser = await intake_http.post(rating_url(TOKENS.issue(SUBJECT)), json={"score": 5}, headers=headers)
    assert by_browser.status_code == 503 and by_browser.json() == chinese
    by_link = await intake_http.post(
        rating_url(TOKENS.issue(SUBJECT)) + "?lang=zh-Hans", json={"score": 5}, headers={"Accept-Language": "en"}
    )
    assert by_link.status_code == 503 and by_link.json() == chinese


# --- Telegram -------------------------------------------------------------------------------------

CHAT_ID = 4242
ANA = {"id": CHAT_ID, "is_bot": False, "first_name": "Ana"}


async def deliver(client: httpx.AsyncClient, update: dict) -> httpx.Response:
    return await client.post("/v1/telegram/webhook", json=update, headers={SECRET_HEADER: TELEGRAM_SECRET})


async def ticket_of_a_telegram_chat(client: httpx.AsyncClient, settings: Settings) -> str:
    """What a customer's first message makes: a ticket, and the chat's conversation leading to it."""
    update = {
        "update_id": 1,
        "message": {"message_id": 10, "from": ANA, "chat": {"id": CHAT_ID, "type": "private"}, "date": 1_700_000_000},
    }
    update["message"]["text"] = "My order never arrived"
    assert (await deliver(client, update)).status_code == 200
    topic = Topics(settings.topic_prefix).name(INBOUND)
    [record] = await read_topic(settings.kafka_bootstrap, topic, at_least=1)
    return InboundMessage.model_validate_json(record.value).ticket_id


async def rating_keyboard(fake: FakeTelegramApi, chat_id: int, ticket_id: str) -> int:
    """Sends the CSAT keyboard as the notifier does; returns its message ID."""
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(str(score), callback_data=f"csat:{ticket_id}:1:{score}") for score in range(1, 6)]]
    )
    async with Bot(TELEGRAM_TOKEN, base_url=fake.base_url) as bot:
        sent = await bot.send_message(chat_id, "How did we do?", reply_markup=keyboard)
    return sent.message_id


def button_press(update_id: int, chat_id: int, message_id: int, data: str) -> dict:
    presser = {**ANA, "id": chat_id}
    message = {"message_id": message_id, "date": 1_700_000_100, "chat": {"id": chat_id, "type": "private"}}
    query = {"id": f"query-{update_id}", "from": presser, "chat_instance": "ci", "message": message, "data": data}
    return {"update_id": update_id, "callback_query": query}


async def test_a_telegram_rating_from_the_tickets_chat_is_a_rate_command(intake_http, all_channels, fake_telegram):
    ticket_id = await ticket_of_a_telegram_chat(intake_http, all_channels)
    keyboard = await rating_keyboard(fake_telegram, CHAT_ID, ticket_id)
    response = await deliver(intake_http, button_press(2, CHAT_ID, keyboard, f"csat:{ticket_id}:1:5"))
    assert response.status_code == 200
    [rated] = await published_ratings(all_channels, 1)
    assert (rated.ticket_id, rated.resolution, rated.score, rated.agent_id) == (ticket_id, 1, 5, "customer")
    [answered] = fake_telegram.calls_to("answerCallbackQuery")
    assert answered.args["callback_query_id"] == "query-2" and answered.args["text"] == "Thanks for your rating!"
    [edited] = fake_telegram.calls_to("editMessageReplyMarkup")
    assert edited.ok and "reply_markup" not in fake_telegram.message(CHAT_ID, keyboard)


async def test_a_telegram_rating_from_another_chat_is_answered_and_records_nothing(
    intake_http, all_channels, fake_telegram
):
    ticket_id = await ticket_of_a_telegram_chat(intake_http, all_channels)
    stranger = 5555
    keyboard = await rating_keyboard(fake_telegram, stranger, ticket_id)
    response = await deliver(intake_http, button_press(2, stranger, keyboard, f"csat:{ticket_id}:1:1"))
    assert response.status_code == 200
    assert await no_commands(all_channels)
    [answered] = fake_telegram.calls_to("answerCallbackQuery")
    assert "text" not in answered.args
    assert not fake_telegram.calls_to("editMessageReplyMarkup")
    assert fake_telegram.message(stranger, keyboard)["reply_markup"]


async def test_other_telegram_buttons_are_answered_and_ignored(intake_http, all_channels, fake_telegram):
    ticket_id = await ticket_of_a_telegram_chat(intake_http, all_channels)
    for update_id, data in enumerate(["yes", f"csat:{ticket_id}:1:9"], start=2):
        assert (await deliver(intake_http, button_press(update_id, CHAT_ID, 99, data))).status_code == 200
    assert len(fake_telegram.calls_to("answerCallbackQuery")) == 2
    assert await no_commands(all_channels)


# --- The web chat ---------------------------------------------------------------------------------


async def next_frame(websocket, timeout: float = 30) -> dict:
    return json.loads(await asyncio.wait_for(websocket.recv(), timeout))


@pytest.fixture
def chat_url(services: ServiceProcesses) -> str:
    return services.start_http().replace("http://", "ws://") + "/v1/chat"


async def test_a_chat_rating_rates_the_sessions_ticket(chat_url, settings):
    async with connect(chat_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "name": "Ana"}))
        ticket_id = (await next_frame(websocket))["ticket_id"]
        # What the notifier pushes after a resolution reaches the session as it is.
        request = {"type": "csat", "ticket_id": ticket_id, "resolution": 1, "scores": [1, 2, 3, 4, 5]}
        redis = connect_redis(settings.redis_url)
        try:
            # The session subscribes just after it answered the hello: publish until it hears.
            while not await redis.publish(chat_channel(ticket_id), json.dumps(request)):
                await asyncio.sleep(0.05)
        finally:
            await redis.aclose()
        assert await next_frame(websocket) == request
        await websocket.send(json.dumps({"type": "csat", "resolution": 1, "score": 3}))
        assert await next_frame(websocket) == {"type": "csat_thanks", "resolution": 1}
    [rated] = await published_ratings(settings, 1)
    assert (rated.ticket_id, rated.resolution, rated.score, rated.agent_id) == (ticket_id, 1, 3, "customer")
    assert rated.event_id == derived_id("csat", ticket_id, 1)


async def test_a_bad_chat_rating_gets_the_error_frame_and_records_nothing(chat_url, settings):
    async with connect(chat_url) as websocket:
        await websocket.send(json.dumps({"type": "hello"}))
        await next_frame(websocket)
        await websocket.send(json.dumps({"type": "csat", "resolution": 1, "score": 9}))
        refused = await next_frame(websocket)
        assert refused["type"] == "error" and refused["code"] == "bad_frame"
        with pytest.raises(ConnectionClosed):
            await next_frame(websocket)
    assert await no_commands(settings)


async def test_a_keyboard_sent_before_the_customer_said_new_still_rates_its_ticket(
    intake_http, all_channels, fake_telegram
):
    ticket_id = await ticket_of_a_telegram_chat(intake_http, all_channels)
    keyboard = await rating_keyboard(fake_telegram, CHAT_ID, ticket_id)
    redis = connect_redis(all_channels.redis_url)
    try:
        # The notifier records the conversation of what it sent; then /new points the chat elsewhere.
        await remember_conversation(redis, [telegram_message(CHAT_ID, keyboard)], ticket_id)
        await forget_conversation(redis, [telegram_chat(CHAT_ID)])
    finally:
        await redis.aclose()
    assert (await deliver(intake_http, button_press(2, CHAT_ID, keyboard, f"csat:{ticket_id}:1:2"))).status_code == 200
    [rated] = await published_ratings(all_channels, 1)
    assert (rated.ticket_id, rated.score) == (ticket_id, 2)


async def test_a_telegram_rating_kafka_did_not_take_is_redelivered_by_telegram(
    intake_http, all_channels, fake_telegram, monkeypatch
):
    ticket_id = await ticket_of_a_telegram_chat(intake_http, all_channels)

    async def broker_down(*_):
        raise KafkaConnectionError("broker unreachable")

    monkeypatch.setattr(telegram_module, "publish_rating", broker_down)
    response = await deliver(intake_http, button_press(2, CHAT_ID, 99, f"csat:{ticket_id}:1:5"))
    assert response.status_code == 503
    assert not fake_telegram.calls_to("answerCallbackQuery")
