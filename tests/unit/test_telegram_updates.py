"""What Telegram updates mean to Switchboard: the pure normaliser and the event it leads to."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from services.intake.telegram import (
    BotCommand,
    CustomerMessage,
    Ignored,
    TelegramFile,
    normalise_update,
    thread_keys,
    to_inbound,
)
from services.intake.telegram_content import MessageEntity, with_hidden_links
from services.intake.ticket_ids import Resolution
from services.notifier.telegram import split_for_telegram
from shared.events import Attachment
from shared.settings import Settings
from shared.telegram_bot import telegram_bot
from tests.fuzz_inputs import entity, json_values, telegram_updates

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "webhooks" / "telegram"
DATASET = CORPUS / "aiogram-tests-types" / "dataset.json"

ANA = {"id": 4242, "is_bot": False, "first_name": "Ana", "last_name": "Lima", "username": "ana_l"}
PRIVATE_CHAT = {"id": 4242, "type": "private", "first_name": "Ana"}
SENT = 1_700_000_000


def update(update_id: int = 1, kind: str = "message", **fields: Any) -> dict[str, Any]:
    message = {"message_id": 7, "from": ANA, "chat": PRIVATE_CHAT, "date": SENT, **fields}
    return {"update_id": update_id, kind: message}


def customer_message(raw: dict[str, Any]) -> CustomerMessage:
    result = normalise_update(raw)
    assert isinstance(result, CustomerMessage), result
    return result


def test_a_private_text_message_is_a_customer_message():
    message = customer_message(update(10, text="My order never arrived"))
    assert message.update_id == 10 and message.chat_id == 4242 and message.message_id == 7
    assert message.text == "My order never arrived"
    assert message.sender.name == "Ana Lima"
    assert message.sender.telegram_user_id == 4242 and message.sender.telegram_username == "ana_l"
    assert message.sender.phone is None
    assert message.sent_at == datetime.fromtimestamp(SENT, UTC)
    assert message.channel_message_id == "4242:7"
    assert not message.edited and not message.starts_new_ticket and message.files == ()


def test_a_photo_keeps_its_caption_and_only_the_largest_size():
    sizes = [
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 51, "file_size": 1101},
        {"file_id": "large", "file_unique_id": "l", "width": 1280, "height": 720, "file_size": 90_000},
        {"file_id": "medium", "file_unique_id": "m", "width": 320, "height": 180, "file_size": 9000},
    ]
    message = customer_message(update(photo=sizes, caption="The box was crushed"))
    assert message.text == "The box was crushed"
    assert message.files == (TelegramFile("large", "photo", "image/jpeg", size=90_000),)


def test_a_photo_without_caption_gets_a_placeholder_text():
    message = customer_message(update(photo=[{"file_id": "p", "width": 10, "height": 10}]))
    assert message.text == "[photo]"


def test_a_document_carries_its_name_type_and_size():
    document = {"file_id": "doc", "file_name": "invoice.pdf", "mime_type": "application/pdf", "file_size": 2048}
    message = customer_message(update(document=document))
    assert message.files == (TelegramFile("doc", "document", "application/pdf", "invoice.pdf", 2048),)
    assert message.text == "[document: invoice.pdf]"


def test_voice_messages_are_attachments_with_a_default_type():
    message = customer_message(update(voice={"file_id": "v", "duration": 3}))
    assert message.files == (TelegramFile("v", "voice message", "audio/ogg"),)
    assert message.text == "[voice message]"


def test_an_animation_is_one_file_although_telegram_also_sends_it_as_a_document():
    gif = {"file_id": "gif", "file_name": "a.gif.mp4", "mime_type": "video/mp4"}
    message = customer_message(update(animation=gif, document=gif))
    assert [file.label for file in message.files] == ["animation"]


def test_a_reply_names_the_message_it_answers_and_looks_there_first():
    message = customer_message(update(text="Still broken", reply_to_message={"message_id": 3, "date": SENT}))
    assert message.reply_to_message_id == 3
    lookup, remember = thread_keys(message)
    assert lookup == ["telegram:message:4242:3", "telegram:chat:4242"]
    assert remember == ["telegram:chat:4242", "telegram:message:4242:7"]


def test_an_edit_is_an_edit_of_the_original_and_stays_on_its_ticket():
    message = customer_message(update(5, "edited_message", text="My order #12 never arrived", edit_date=SENT + 60))
    assert message.edited
    assert message.sent_at == datetime.fromtimestamp(SENT + 60, UTC)
    assert message.original_id == "4242:7"
    assert message.channel_message_id == f"4242:7:edit:{SENT + 60}"
    assert thread_keys(message) == (["telegram:message:4242:7", "telegram:chat:4242"], [])


@pytest.mark.parametrize("text", ["/start", "/start ref-campaign", "/start@switchboard_bot", "/help"])
def test_start_and_help_get_a_greeting_not_a_ticket(text):
    assert normalise_update(update(text=text)) == BotCommand(4242, "start")


def test_new_alone_makes_the_next_message_open_a_ticket():
    assert normalise_update(update(text="/new")) == BotCommand(4242, "new")


def test_new_with_text_opens_a_new_ticket_with_that_text():
    message = customer_message(update(text="/new  The app crashes on login"))
    assert message.starts_new_ticket and message.text == "The app crashes on login"
    assert thread_keys(message) == ([], ["telegram:chat:4242", "telegram:message:4242:7"])


def test_new_as_a_caption_opens_a_new_ticket_with_the_photo():
    message = customer_message(update(caption="/new", photo=[{"file_id": "p", "width": 1, "height": 1}]))
    assert message.starts_new_ticket and message.text == "[photo]" and len(message.files) == 1


def test_other_commands_are_plain_text():
    assert customer_message(update(text="/refund please")).text == "/refund please"


def test_edited_commands_are_ignored():
    result = normalise_update(update(kind="edited_message", text="/start", edit_date=SENT + 1))
    assert isinstance(result, Ignored) and not result.malformed


def test_a_customer_sharing_their_own_contact_proves_their_phone():
    contact = {"phone_number": "34600123456", "first_name": "Ana", "user_id": 4242}
    message = customer_message(update(contact=contact))
    assert message.sender.phone == "+34600123456"
    assert message.text == "[contact: Ana, +34600123456]"


def test_someone_elses_contact_is_text_not_an_identity():
    contact = {"phone_number": "+34600999999", "first_name": "Bruno", "last_name": "Paz", "user_id": 777}
    message = customer_message(update(contact=contact))
    assert message.sender.phone is None
    assert message.text == "[contact: Bruno Paz, +34600999999]"


@pytest.mark.parametrize(
    ("text", "email"),
    [("/email ana@example.com", "ana@example.com"), ("/email not an address", None), ("/emails a@b.example", None)],
)
def test_email_gives_the_customer_s_address_as_a_message_like_any_other(text, email):
    message = customer_message(update(text=text))
    assert message.sender.email == email and message.text == text


def test_locations_stickers_and_forwards_read_as_text():
    assert customer_message(update(location={"latitude": 41.39, "longitude": 2.17})).text == "[location: 41.39, 2.17]"
    assert customer_message(update(sticker={"file_id": "s", "emoji": "👍"})).text == "[sticker 👍]"
    forwarded = customer_message(update(text="see this", forward_origin={"type": "hidden_user", "date": SENT}))
    assert forwarded.text == "[forwarded message]\nsee this"


@pytest.mark.parametrize("chat_type", ["group", "supergroup", "channel"])
def test_messages_outside_private_chats_are_ignored(chat_type):
    result = normalise_update(update(text="hello all", chat={"id": -100123, "type": chat_type, "title": "Fans"}))
    assert isinstance(result, Ignored) and not result.malformed
    assert chat_type in result.reason


@pytest.mark.parametrize(
    "raw",
    [
        {"update_id": 1, "channel_post": {"message_id": 1, "chat": {"id": -1, "type": "channel"}, "date": SENT}},
        {"update_id": 1, "inline_query": {"id": "q", "from": ANA, "query": "", "offset": ""}},
        {"update_id": 1, "callback_query": {"id": "c", "from": ANA, "chat_instance": "x", "data": "yes"}},
        {"update_id": 1, "poll": {"id": "p", "question": "?", "options": [], "is_closed": False}},
        {"update_id": 1, "my_chat_member": {"chat": PRIVATE_CHAT, "from": ANA, "date": SENT}},
        {"update_id": 1, "business_message": {"message_id": 1}},
        {"update_id": 1},
        update(text="beep", **{"from": {**ANA, "is_bot": True}}),
        update(new_chat_title="renamed"),
    ],
    ids=[
        "channel-post",
        "inline-query",
        "callback-query",
        "poll",
        "my-chat-member",
        "unknown-kind",
        "no-content",
        "from-a-bot",
        "service-message",
    ],
)
def test_updates_without_a_customer_message_are_ignored_by_design(raw):
    result = normalise_update(raw)
    assert isinstance(result, Ignored) and not result.malformed, result


@pytest.mark.parametrize(
    "raw",
    [
        [],
        "update",
        None,
        {"update_id": "nope", "message": {}},
        {"update_id": 1, "message": None},
        {"update_id": 1, "message": "hello"},
        {"update_id": 1, "message": {"message_id": 1, "date": SENT, "text": "no chat"}},
        update(photo=[{"width": 1}]),
        update(date="yesterday"),
    ],
    ids=["list", "string", "null", "bad-update-id", "null-message", "string-message", "no-chat", "photo", "date"],
)
def test_malformed_updates_are_ignored_as_malformed_never_raised(raw):
    result = normalise_update(raw)
    assert isinstance(result, Ignored) and result.malformed, result


def test_the_inbound_event_carries_the_reply_route_and_names_refused_files():
    message = customer_message(update(99, photo=[{"file_id": "p", "width": 1, "height": 1}], caption="see"))
    attachment = Attachment(sha256="a" * 64, content_type="image/jpeg", size=3)
    message_id = uuid.uuid4()
    resolution = Resolution("SB-1001", message_id, "telegram:update:99", ("telegram:chat:4242",))
    inbound = to_inbound(message, resolution=resolution, attachments=[attachment], refusals=["x.exe: no"])
    assert inbound.channel == "telegram" and inbound.source == "telegram" and inbound.kind == "message"
    assert inbound.ticket_id == "SB-1001" and inbound.message_id == inbound.event_id == message_id
    assert inbound.channel_message_id == "4242:7" and inbound.subject is None
    assert inbound.text == "see\n[attachment refused: x.exe: no]"
    assert inbound.attachments == [attachment]
    assert inbound.reply_route.channel == "telegram"
    assert (inbound.reply_route.address, inbound.reply_route.reply_to_id) == ("4242", "7")
    assert inbound.received_at == datetime.fromtimestamp(SENT, UTC) and inbound.edit_of is None
    # What intake indexed travels along, so that `switchboard replay` can rebuild it.
    assert inbound.idempotency_key == "telegram:update:99" and inbound.conversations == ["telegram:chat:4242"]


def test_the_customers_telegram_language_is_the_inbound_language_hint():
    """Bot API `User.language_code` names the client's language: the router's first guess at the customer's."""
    message = customer_message(update(text="你好，我的订单没到", **{"from": {**ANA, "language_code": "zh-hans"}}))
    resolution = Resolution("SB-1001", uuid.uuid4(), "telegram:update:1", ())
    assert to_inbound(message, resolution=resolution, attachments=[], refusals=[]).language_hint == "zh-hans"
    assert customer_message(update(text="hi")).language_hint is None


def test_an_edit_event_points_at_the_original():
    message = customer_message(update(kind="edited_message", text="fixed typo", edit_date=SENT + 5))
    resolution = Resolution("SB-1001", uuid.uuid4(), "telegram:update:100", ())
    inbound = to_inbound(message, resolution=resolution, attachments=[], refusals=[])
    assert inbound.kind == "edit" and inbound.edit_of == "4242:7"
    assert inbound.channel_message_id != inbound.edit_of


def test_long_replies_are_split_for_telegram_at_line_breaks():
    paragraph = "x" * 3000
    assert split_for_telegram(f"{paragraph}\n{paragraph}") == [paragraph, paragraph]
    assert split_for_telegram("y" * 9000) == ["y" * 4096, "y" * 4096, "y" * 808]
    assert split_for_telegram("short") == ["short"]


def test_the_split_counts_utf16_units_like_telegram():
    # Each emoji outside the Basic Multilingual Plane counts twice.
    chunks = split_for_telegram("😀" * 3000)
    assert [len(chunk) for chunk in chunks] == [2048, 952]


@pytest.mark.parametrize(
    ("api_url", "file_url"),
    [
        ("https://api.telegram.org/bot", "https://api.telegram.org/file/bot1:T"),
        ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/file/bot1:T"),
        ("http://127.0.0.1:8081/bot{token}/test", "http://127.0.0.1:8081/file/bot1:T/test"),
    ],
)
def test_the_file_url_is_derived_from_the_api_url(api_url, file_url):
    bot = telegram_bot(Settings(telegram_bot_token=SecretStr("1:T"), telegram_api_url=api_url))
    assert bot.base_file_url == file_url


def test_an_api_url_without_bot_is_a_configuration_error():
    with pytest.raises(ValueError, match="must end in /bot"):
        telegram_bot(Settings(telegram_bot_token=SecretStr("1:T"), telegram_api_url="https://example.com/api/"))


# --- The aiogram corpus of real payloads ------------------------------------------------------------


def _corpus_updates() -> list[Any]:
    if not DATASET.exists():
        return [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=f"corpus not found at {DATASET}"))]
    cases = []
    for number, (name, payload) in enumerate(sorted(json.loads(DATASET.read_text()).items()), start=1):
        if "update_id" in payload:
            cases.append(pytest.param(payload, id=name))
        elif "message_id" in payload and "chat" in payload:
            cases.append(pytest.param({"update_id": number, "message": payload}, id=name))
    return cases


# Payloads whose meaning is certain; every other one must at least be understood.
EXPECTED_IN_CORPUS = {
    "MESSAGE": "Hi, world!",
    "UPDATE": "Hi, world!",
    "REPLY_MESSAGE": "Reply to quoted message",
    "MESSAGE_WITH_PHOTO": "photo description",
    "MESSAGE_WITH_DOCUMENT": "Read my document",
    "MESSAGE_WITH_GAME": "[game: Karate Kido]",
    "MESSAGE_WITH_INVOICE": None,
    "MESSAGE_WITH_SUCCESSFUL_PAYMENT": None,
}


@pytest.mark.parametrize("raw", _corpus_updates())
def test_every_corpus_update_is_a_ticket_message_or_ignored_by_design(raw, request):
    result = normalise_update(raw)
    assert isinstance(result, CustomerMessage | BotCommand | Ignored)
    assert not (isinstance(result, Ignored) and result.malformed), result
    name = request.node.callspec.id
    if name in EXPECTED_IN_CORPUS:
        expected = EXPECTED_IN_CORPUS[name]
        if expected is None:
            assert isinstance(result, Ignored), result
        else:
            assert isinstance(result, CustomerMessage) and result.text == expected, result


def test_the_corpus_media_messages_carry_their_files():
    if not DATASET.exists():
        pytest.skip(f"corpus not found at {DATASET}")
    dataset = json.loads(DATASET.read_text())
    for name, label in [
        ("MESSAGE_WITH_PHOTO", "photo"),
        ("MESSAGE_WITH_DOCUMENT", "document"),
        ("MESSAGE_WITH_AUDIO", "audio"),
        ("MESSAGE_WITH_VOICE", "voice message"),
        ("MESSAGE_WITH_VIDEO", "video"),
    ]:
        message = customer_message({"update_id": 1, "message": dataset[name]})
        assert [file.label for file in message.files] == [label], name


# --- Everything a person sends is carried -----------------------------------------------------------


def link(offset: int, length: int, url: str) -> dict[str, Any]:
    return {"type": "text_link", "offset": offset, "length": length, "url": url}


def test_links_hidden_behind_text_keep_their_target():
    text = "See our docs and the status page."
    entities = [link(8, 4, "https://docs.example.com"), {"type": "bold", "offset": 0, "length": 3}]
    entities.append(link(21, 11, "https://status.example.com"))
    message = customer_message(update(text=text, entities=entities))
    assert message.text == "See our docs (https://docs.example.com) and the status page (https://status.example.com)."


def test_caption_links_are_carried_too():
    photo = [{"file_id": "p", "width": 1, "height": 1}]
    message = customer_message(
        update(photo=photo, caption="the error", caption_entities=[link(4, 5, "https://x.example")])
    )
    assert message.text == "the error (https://x.example)"


def test_offsets_count_utf16_units_like_telegram():
    # 😀 is two UTF-16 units: the link "here" starts at unit 7, not at character 6.
    message = customer_message(update(text="😀 look here", entities=[link(8, 4, "https://x.example")]))
    assert message.text == "😀 look here (https://x.example)"


def test_a_mention_of_a_user_without_username_names_the_user():
    mention = {
        "type": "text_mention",
        "offset": 0,
        "length": 5,
        "user": {"id": 777, "is_bot": False, "first_name": "Bruno"},
    }
    assert customer_message(update(text="Bruno has it too", entities=[mention])).text == (
        "Bruno (tg://user?id=777) has it too"
    )


@pytest.mark.parametrize(
    "entity",
    [link(40, 5, "https://x.example"), link(-1, 3, "https://x.example"), link(1, 1, "https://x.example")],
    ids=["past-the-end", "negative", "inside-a-character"],
)
def test_a_link_whose_offsets_do_not_fit_is_listed_not_lost(entity):
    assert customer_message(update(text="😀 hi", entities=[entity])).text == "😀 hi\n[link: https://x.example]"


def test_a_link_whose_text_is_its_address_is_not_repeated():
    message = customer_message(update(text="go to example.com", entities=[link(6, 11, "https://example.com")]))
    assert message.text == "go to example.com"


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (
            {
                "venue": {"location": {"latitude": 52.52, "longitude": 13.4}, "title": "Shop", "address": "Main St 1"},
                "location": {"latitude": 52.52, "longitude": 13.4},
            },
            "[venue: Shop, Main St 1 (52.52, 13.4)]",
        ),
        (
            {"poll": {"id": "p", "question": "Which plan?", "options": [{"text": "Basic"}, {"text": "Pro"}]}},
            "[poll: Which plan? — Basic / Pro]",
        ),
        ({"dice": {"emoji": "🎲", "value": 4}}, "[dice 🎲: 4]"),
        (
            {"story": {"chat": {"id": -1001, "type": "channel", "username": "shopnews"}, "id": 5}},
            "[story from @shopnews]",
        ),
        ({"game": {"title": "Karate Kido", "description": "", "photo": []}}, "[game: Karate Kido]"),
        (
            {"checklist": {"title": "To fix", "tasks": [{"id": 1, "text": "login"}, {"id": 2, "text": "export"}]}},
            "[checklist: To fix]\n- login\n- export",
        ),
        (
            {
                "text": "this part is wrong",
                "quote": {"text": "Total: 0 €", "position": 3},
                "reply_to_message": {"message_id": 5},
            },
            "> Total: 0 €\nthis part is wrong",
        ),
        (
            {
                "text": "look",
                "forward_origin": {"type": "user", "date": SENT, "sender_user": {**ANA, "id": 9, "first_name": "Rui"}},
            },
            "[forwarded from Rui Lima]\nlook",
        ),
        (
            {
                "text": "look",
                "forward_origin": {"type": "channel", "date": SENT, "chat": {"id": -100, "title": "Shop news"}},
            },
            "[forwarded from Shop news]\nlook",
        ),
        (
            {
                "text": "is this still valid?",
                "external_reply": {"origin": {"type": "channel", "date": SENT, "chat": {"id": -100, "title": "Deals"}}},
                "quote": {"text": "50% off", "position": 0},
            },
            "[in reply to a message from Deals]\n> 50% off\nis this still valid?",
        ),
    ],
    ids=[
        "venue",
        "poll",
        "dice",
        "story",
        "game",
        "checklist",
        "quote",
        "forwarded-from-user",
        "forwarded-from-channel",
        "reply-to-another-chat",
    ],
)
def test_what_a_person_sends_besides_text_reads_as_text(content, text):
    assert customer_message(update(**content)).text == text


@given(st.one_of(telegram_updates, json_values))
def test_any_update_is_understood_or_ignored_never_raised(raw):
    assert isinstance(normalise_update(raw), CustomerMessage | BotCommand | Ignored)


@given(st.text(max_size=60), st.lists(entity.map(MessageEntity.model_validate), max_size=5))
def test_hidden_links_are_added_to_the_text_and_nothing_is_taken_away(text, entities):
    rendered = with_hidden_links(text, entities)
    targets = [e.url if e.type == "text_link" else f"tg://user?id={e.user.id}" for e in entities if _is_link(e)]
    if not targets:
        assert rendered == text
    for target in targets:
        # Shown after its text, listed at the end, or already the visible text itself.
        assert target in rendered or target.split("://", 1)[-1] in rendered
    remaining = iter(rendered)
    assert all(character in remaining for character in text), "the original text, in order"


def _is_link(entity: MessageEntity) -> bool:
    return (entity.type == "text_link" and bool(entity.url)) or (
        entity.type == "text_mention" and entity.user is not None
    )
