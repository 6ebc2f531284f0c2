"""Slack customer intake in-process: signed Events API posts → InboundMessage on the real broker.

Slack's Web API is the FakeSlackApi (auth.test for our bot's identity, users.info for the customer).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from services.intake.core import Intake, IntakeProcess
from services.intake.slack_events import slack_routes
from shared.events import InboundMessage, ReplyRoute
from shared.ids import is_ticket_id
from shared.settings import Settings
from shared.topics import INBOUND, Topics
from tests.conftest import SLACK_SIGNING_SECRET as SIGNING_SECRET
from tests.conftest import SLACK_TOKEN
from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlackApi
from tests.support import in_process_client, read_topic, topic_size

pytestmark = pytest.mark.integration

SUPPORT_CHANNEL = "C0CUSTOMERS"  # the example config's shared support channel
OTHER_CHANNEL = "C0RANDOM"
CUSTOMER = "U0CUSTOMER"
CUSTOMER_PROFILE = {
    "name": "maria",
    "locale": "es-ES",
    "profile": {"real_name": "María López", "email": "maria@example.com"},
}
_sequence = count(1)


@dataclass
class SlackIntake:
    client: httpx.AsyncClient
    intake: Intake
    settings: Settings

    @property
    def inbound_topic(self) -> str:
        return Topics(self.settings.topic_prefix).name(INBOUND)

    async def post(
        self, payload: dict, *, secret: str = SIGNING_SECRET, age: int = 0, signed: bool = True, **headers: str
    ) -> httpx.Response:
        """Posts `payload` as Slack does: signed with `secret`, `age` seconds ago."""
        body = json.dumps(payload)
        timestamp = str(int(time.time()) - age)
        if signed:
            headers["X-Slack-Signature"] = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
        return await self.client.post(
            "/v1/slack/events",
            content=body,
            headers={"Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp, **headers},
        )

    async def published(self, expected: int) -> list[InboundMessage]:
        """The inbound messages on Kafka, each keyed by its ticket, in the order they were written in Slack.

        (Kafka keeps order per partition only, and different tickets land on different partitions.)
        """
        records = await read_topic(self.settings.kafka_bootstrap, self.inbound_topic, at_least=expected)
        assert len(records) == expected, f"expected {expected} inbound messages, got {len(records)}"
        messages = [InboundMessage.model_validate_json(record.value) for record in records]
        assert [record.key for record in records] == [message.ticket_id.encode() for message in messages]
        return sorted(messages, key=lambda message: message.received_at)

    async def nothing_published(self) -> bool:
        return await topic_size(self.settings.kafka_bootstrap, self.inbound_topic) == 0


@pytest.fixture
def slack_api() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(bot_token=SLACK_TOKEN, users={CUSTOMER: CUSTOMER_PROFILE}) as api:
        yield api


@pytest.fixture
async def slack(settings: Settings, slack_api: FakeSlackApi) -> AsyncIterator[SlackIntake]:
    """The Slack router on its own app, wired the way intake-http wires it."""
    settings = settings.model_copy(
        update={
            "slack_bot_token": SecretStr(SLACK_TOKEN),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_api_url": slack_api.base_url,
        }
    )
    process = IntakeProcess("intake-http", settings)
    app = process.app()
    app.include_router(slack_routes(process.intake, settings))
    async with in_process_client(app) as client:
        yield SlackIntake(client, process.intake, settings)


def next_ts() -> str:
    return f"{int(time.time())}.{next(_sequence):06d}"


def event_callback(event: dict, event_id: str | None = None) -> dict:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0SWITCHBOARD",
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_sequence):08d}",
        "event_time": int(time.time()),
        "event": event,
    }


def message(text: str, *, channel: str = SUPPORT_CHANNEL, user: str = CUSTOMER, **fields) -> dict:
    return {"type": "message", "channel": channel, "user": user, "text": text, "ts": next_ts(), **fields}


def changed(original: dict, **fields) -> dict:
    """The event Slack sends when `original` is edited, or gains a link preview."""
    return {
        "type": "message",
        "subtype": "message_changed",
        "channel": original["channel"],
        "hidden": True,
        "ts": next_ts(),
        "message": {**original, **fields},
        "previous_message": original,
    }


def deleted(original: dict) -> dict:
    return {
        "type": "message",
        "subtype": "message_deleted",
        "channel": original["channel"],
        "hidden": True,
        "ts": next_ts(),
        "deleted_ts": original["ts"],
        "previous_message": original,
    }


async def test_a_customer_message_opens_a_ticket_with_their_slack_identity(slack, slack_api):
    event = message("Hi, our <https://example.com|dashboard> is down")
    response = await slack.post(event_callback(event, "Ev0001"))
    assert response.status_code == 200, response.text

    [inbound] = await slack.published(1)
    assert is_ticket_id(inbound.ticket_id)
    assert inbound.message_id == Intake.message_id("slack:event:Ev0001")
    assert inbound.channel == "slack" and inbound.kind == "message" and inbound.source == SUPPORT_CHANNEL
    assert inbound.channel_message_id == f"{SUPPORT_CHANNEL}:{event['ts']}"
    # Slack's markup becomes plain text; the link's target stays visible.
    assert inbound.text == "Hi, our dashboard (https://example.com) is down"
    assert inbound.sender.slack_user_id == CUSTOMER
    assert inbound.sender.name == "María López" and inbound.sender.email == "maria@example.com"
    assert inbound.reply_route == ReplyRoute(channel="slack", address=SUPPORT_CHANNEL, reply_to_id=event["ts"])


async def test_a_retried_event_is_the_same_message_on_the_same_ticket(slack):
    payload = event_callback(message("Invoices are missing"), "Ev0002")
    first = await slack.post(payload)
    retry = await slack.post(payload, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert first.status_code == retry.status_code == 200

    original, redelivered = await slack.published(2)
    assert redelivered.message_id == original.message_id
    assert redelivered.ticket_id == original.ticket_id


async def test_a_thread_reply_joins_the_ticket_of_its_thread(slack):
    opening = message("Exports fail since this morning")
    await slack.post(event_callback(opening))
    await slack.post(event_callback(message("Here is the error ID: 42", thread_ts=opening["ts"])))
    await slack.post(event_callback(message("Also, can we add a seat?")))

    first, reply, new_topic = await slack.published(3)
    assert reply.ticket_id == first.ticket_id
    assert reply.reply_route.reply_to_id == opening["ts"]
    assert new_topic.ticket_id != first.ticket_id


async def test_an_edit_becomes_an_edit_of_the_same_ticket(slack):
    original = message("The export failed at 10:00")
    await slack.post(event_callback(original))
    edit = changed(original, text="The export failed at 11:00", edited={"user": CUSTOMER, "ts": next_ts()})
    response = await slack.post(event_callback(edit))
    assert response.status_code == 200, response.text

    first, edit = await slack.published(2)
    assert edit.kind == "edit" and edit.ticket_id == first.ticket_id
    assert edit.edit_of == first.channel_message_id == f"{SUPPORT_CHANNEL}:{original['ts']}"
    assert edit.text == "The export failed at 11:00"
    assert edit.message_id != first.message_id


@pytest.mark.parametrize(
    "event",
    [
        message("chit-chat", channel=OTHER_CHANNEL),
        message("I am a bot", user="U0OTHERAPP", bot_id="B0OTHERAPP"),
        {**message("legacy integration"), "subtype": "bot_message", "bot_id": "B0LEGACY"},
        message("Thanks! This is ticket SB-1001", user=BOT_USER_ID),
        message("Let me check that for you", user="U0ANA"),  # an agent of the example config
        message("<@U0CUSTOMER> has joined the channel", subtype="channel_join"),
        deleted(message("oops, wrong channel")),
        changed(
            message("see https://example.com"), attachments=[{"title": "Example", "from_url": "https://example.com"}]
        ),
    ],
    ids=["other-channel", "bot", "legacy-bot", "our-own-bot-user", "agent", "channel-join", "deleted", "link-preview"],
)
async def test_messages_that_are_not_a_customer_writing_publish_nothing(slack, event):
    response = await slack.post(event_callback(event))
    assert response.status_code == 200, response.text
    assert await slack.nothing_published()


async def test_auth_test_and_the_customer_profile_are_looked_up_once(slack, slack_api):
    for text in ("first", "second", "third"):
        assert (await slack.post(event_callback(message(text)))).status_code == 200
    await slack.published(3)
    assert len(slack_api.calls_to("auth.test")) == 1
    assert len(slack_api.calls_to("users.info")) == 1
    assert 0 < await slack.intake.redis.ttl(f"sb:slack:profile:{CUSTOMER}") <= 3600


async def test_the_customers_slack_locale_is_the_language_hint(slack):
    """Asked for with `include_locale` (Slack sends it only then), the locale reaches the router, which
    takes it as the customer's language before guessing from the text. Remembered with the profile."""
    for text in ("Hola, no puedo entrar", "¿Alguna novedad?"):
        assert (await slack.post(event_callback(message(text)))).status_code == 200
    messages = await slack.published(2)
    assert [inbound.language_hint for inbound in messages] == ["es-ES", "es-ES"]


async def test_a_customer_slack_will_not_describe_still_gets_through(slack, slack_api):
    slack_api.fail_next("users.info", "user_not_found")
    assert (await slack.post(event_callback(message("Hello from another org")))).status_code == 200

    [inbound] = await slack.published(1)
    assert inbound.sender.slack_user_id == CUSTOMER and inbound.sender.email is None
    assert await slack.intake.redis.exists(f"sb:slack:profile:{CUSTOMER}") == 0


@pytest.mark.parametrize(
    "forge",
    [
        {"secret": "not-the-signing-secret"},
        {"age": 301},
        {"signed": False},
    ],
    ids=["wrong-secret", "301s-old", "no-signature"],
)
async def test_unsigned_or_stale_requests_get_401_and_publish_nothing(slack, slack_api, forge):
    response = await slack.post(event_callback(message("let me in")), **forge)
    assert response.status_code == 401
    # Refused by our own guard (FastAPI's "detail"), before Bolt or anything else saw the request.
    assert response.json() == {"detail": "missing, stale or invalid Slack signature"}
    assert await slack.nothing_published()
    assert slack_api.calls == []


async def test_a_request_without_any_slack_headers_gets_401(slack):
    response = await slack.client.post("/v1/slack/events", json=event_callback(message("hello")))
    assert response.status_code == 401
    assert await slack.nothing_published()


async def test_url_verification_answers_the_challenge(slack):
    challenge = {
        "token": "legacy-verification-token",
        "challenge": "prove-you-are-the-endpoint",
        "type": "url_verification",
    }
    response = await slack.post(challenge)
    assert response.status_code == 200
    assert response.json() == {"challenge": challenge["challenge"]}


async def test_a_message_kafka_did_not_take_is_refused_so_that_slack_retries(slack):
    payload = event_callback(message("Is anyone there?"))
    await slack.intake.publisher.stop()
    refused = await slack.post(payload)
    assert refused.status_code >= 500

    await slack.intake.publisher.start()
    retried = await slack.post(payload, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"})
    assert retried.status_code == 200, retried.text
    [inbound] = await slack.published(1)
    assert inbound.message_id == Intake.message_id(f"slack:event:{payload['event_id']}")


# --- Files a customer shares ---------------------------------------------------------------------------

FIELD_REPORT = Path(__file__).resolve().parents[1] / "fixtures" / "field-reports" / "15-slack-file-share.json"
SCREENSHOT = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def file_share(text: str, *files: dict) -> dict:
    """The field report's file_share event, in our support channel, carrying `files`."""
    event = json.loads(FIELD_REPORT.read_text())
    return {**event, "channel": SUPPORT_CHANNEL, "user": CUSTOMER, "text": text, "ts": next_ts(), "files": list(files)}


async def test_a_shared_file_is_downloaded_with_the_bot_token_and_stored(slack, slack_api):
    file = slack_api.add_file(SCREENSHOT, "checkout-error.png", "image/png")
    response = await slack.post(event_callback(file_share("Checkout fails with this error", file)))
    assert response.status_code == 200, response.text

    [inbound] = await slack.published(1)
    [attachment] = inbound.attachments
    assert (attachment.filename, attachment.content_type, attachment.size) == ("checkout-error.png", "image/png", 1032)
    assert attachment.sha256 == hashlib.sha256(SCREENSHOT).hexdigest()
    assert slack.intake.attachments.read(attachment) == SCREENSHOT
    assert inbound.text == "Checkout fails with this error"
    [download] = slack_api.calls_to("files.download")
    assert download.token == SLACK_TOKEN and download.ok


async def test_a_file_over_the_limit_is_named_with_its_link_and_never_downloaded(slack, slack_api):
    announced = slack.intake.attachments.max_bytes + 1
    file = slack_api.add_file(b"a film", "demo.mov", "video/quicktime", size=announced)
    await slack.post(event_callback(file_share("", file)))

    [inbound] = await slack.published(1)
    assert inbound.attachments == []
    assert inbound.text == (
        f"[file demo.mov (video/quicktime, {announced} bytes) not stored: "
        f"demo.mov is {announced} bytes; the limit is {slack.intake.attachments.max_bytes}] {file['permalink']}"
    )
    assert slack_api.calls_to("files.download") == []


async def test_a_file_larger_than_slack_announced_is_refused_after_all(slack, slack_api):
    content = b"x" * (slack.intake.attachments.max_bytes + 1)
    file = slack_api.add_file(content, "dump.bin", "application/octet-stream", size=10)
    await slack.post(event_callback(file_share("the dump", file)))

    [inbound] = await slack.published(1)
    assert inbound.attachments == [] and "dump.bin" in inbound.text and "not stored" in inbound.text


@pytest.mark.parametrize(
    "tamper",
    [
        lambda file: {**file, "url_private_download": file["url_private_download"].replace("F", "G")},
        lambda file: {**file, "url_private_download": "https://files.example.com/f.png", "url_private": None},
    ],
    ids=["slack-refuses", "not-a-slack-host"],
)
async def test_a_file_that_cannot_be_fetched_is_referenced_not_lost(slack, slack_api, tamper):
    file = tamper(slack_api.add_file(SCREENSHOT, "checkout-error.png", "image/png"))
    await slack.post(event_callback(file_share("see attached", file)))

    [inbound] = await slack.published(1)
    assert inbound.attachments == []
    first, reference = inbound.text.split("\n")
    assert first == "see attached"
    assert reference.startswith("[file checkout-error.png (image/png, 1032 bytes) not stored: ")
    assert reference.endswith(file["permalink"])


async def test_a_slack_connect_file_is_described_by_files_info_first(slack, slack_api):
    file = slack_api.add_file(SCREENSHOT, "from-partner.png", "image/png")
    described_later = {"id": file["id"], "mode": "file_access", "file_access": "check_file_info"}
    await slack.post(event_callback(file_share("", described_later)))

    [inbound] = await slack.published(1)
    assert [attachment.filename for attachment in inbound.attachments] == ["from-partner.png"]
    assert inbound.text == "[file: from-partner.png]"
    assert [call.args["file"] for call in slack_api.calls_to("files.info")] == [file["id"]]


async def test_a_file_added_by_an_edit_arrives_with_the_edit(slack, slack_api):
    original = message("Checkout fails")
    await slack.post(event_callback(original))
    file = slack_api.add_file(SCREENSHOT, "checkout-error.png", "image/png")
    await slack.post(event_callback(changed(original, subtype="file_share", files=[file])))

    first, edit = await slack.published(2)
    assert edit.kind == "edit" and edit.edit_of == first.channel_message_id
    assert [attachment.filename for attachment in edit.attachments] == ["checkout-error.png"]
