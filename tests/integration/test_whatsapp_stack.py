"""WhatsApp through the running stack (real broker, Redis and processes, a fake Graph API): webhook →
ticket → acknowledgement and replies through the messages endpoint; statuses on the ticket; the 24-hour
window; forged webhooks refused with nothing on Kafka."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from services.intake.http import create_app
from shared.topics import INBOUND, Topics
from tests.conftest import API_TOKEN
from tests.fakes.whatsapp_api import (
    DEFAULT_PHONE_NUMBER_ID,
    FakeWhatsAppApi,
    message_webhook,
    signed,
    status_webhook,
)
from tests.fuzz_inputs import json_values, plausible_or_anything
from tests.integration.lost_redis import assert_same_projections, projections, replay, settle
from tests.integration.test_contacts_stack import contact_until
from tests.support import ServiceProcesses, in_process_client, reply_as_agent, topic_size, wait_for_ticket

pytestmark = pytest.mark.integration

APP_SECRET = "whatsapp-app-secret-0123456789"
VERIFY_TOKEN = "whatsapp-verify-token"
ANA = "34600123456"


@pytest.fixture
def fake_whatsapp() -> Iterator[FakeWhatsAppApi]:
    with FakeWhatsAppApi() as api:
        yield api


def whatsapp_env(fake: FakeWhatsAppApi) -> dict[str, str]:
    return {
        "SWITCHBOARD_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "SWITCHBOARD_WHATSAPP_APP_SECRET": APP_SECRET,
        "SWITCHBOARD_WHATSAPP_ACCESS_TOKEN": fake.access_token,
        "SWITCHBOARD_WHATSAPP_PHONE_NUMBER_ID": fake.phone_number_id,
        "SWITCHBOARD_WHATSAPP_API_URL": fake.base_url,
    }


def start_stack(services: ServiceProcesses, fake: FakeWhatsAppApi, *names: str) -> str:
    env = whatsapp_env(fake)
    for name in names:
        services.start(name, **env)
    return services.start_http(**env)


def post_webhook(base_url: str, payload: dict, secret: str = APP_SECRET) -> httpx.Response:
    body, headers = signed(payload, secret)
    return httpx.post(f"{base_url}/v1/whatsapp/webhook", content=body, headers=headers, timeout=30)


def text_message(wamid: str, text: str, at: int, wa_id: str = ANA) -> dict:
    return message_webhook(wa_id, {"type": "text", "text": {"body": text}}, wamid=wamid, timestamp=at)


def test_a_whatsapp_message_becomes_a_ticket_acknowledged_answered_and_tracked_on_whatsapp(
    services: ServiceProcesses, fake_whatsapp: FakeWhatsAppApi
):
    base_url = start_stack(services, fake_whatsapp, "router", "notifier")
    now = int(time.time())

    assert post_webhook(base_url, text_message("wamid.IN1", "My parcel never arrived", now)).status_code == 200
    [ack] = fake_whatsapp.wait_for_calls_sync("messages", timeout=30)
    assert ack.args["to"] == ANA and ack.args["type"] == "text"
    ticket_id = ack.args["biz_opaque_callback_data"].split()[0]
    assert ticket_id in ack.text
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
    assert ticket["channel"] == "whatsapp" and ticket["contact"]["phones"] == ["+34600123456"]

    # Meta redelivers the same webhook: nothing new. A photo joins the open ticket, fetched through the media endpoint.
    assert post_webhook(base_url, text_message("wamid.IN1", "My parcel never arrived", now)).status_code == 200
    fake_whatsapp.add_media("2001", b"\x89PNG fake photo", "image/png")
    photo = message_webhook(
        ANA,
        {"type": "image", "image": {"id": "2001", "mime_type": "image/png", "caption": "the label"}},
        wamid="wamid.IN2",
        timestamp=now + 1,
    )
    assert post_webhook(base_url, photo).status_code == 200
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: len(t["messages"]) >= 2)
    assert [m["text"] for m in ticket["messages"]] == ["My parcel never arrived", "the label"]
    assert ticket["messages"][1]["attachments"][0]["content_type"] == "image/png"
    assert [call.method for call in fake_whatsapp.calls if call.method != "messages"] == ["media", "download"]

    reply_as_agent(services.settings, ticket_id, "A new parcel is on its way.")
    [answer] = fake_whatsapp.wait_for_calls_sync(
        "messages", predicate=lambda c: c.text == "A new parcel is on its way."
    )
    assert answer.args["context"] == {"message_id": "wamid.IN2"}, "the reply quotes the customer's latest message"
    assert len(fake_whatsapp.calls_to("messages")) == 2, "one acknowledgement, one reply"

    # WhatsApp reports the reply read: recorded on the ticket, against the reply's message.
    wamid = answer.response["messages"][0]["id"]
    read = status_webhook(
        wamid, "read", recipient=ANA, timestamp=now + 5, tracking=answer.args["biz_opaque_callback_data"]
    )
    assert post_webhook(base_url, read).status_code == 200
    assert post_webhook(base_url, read).status_code == 200
    ticket = wait_for_ticket(
        base_url, ticket_id, API_TOKEN, lambda t: any(h["type"] == "message.status_reported" for h in t["history"])
    )
    [status] = [entry for entry in ticket["history"] if entry["type"] == "message.status_reported"]
    reply = next(m for m in ticket["messages"] if m["author"] == "agent")
    assert status["status"] == "read" and status["external_id"] == wamid and status["message_id"] == reply["id"]

    # The same phone typed into a form meets the WhatsApp customer in one contact.
    form = httpx.post(
        f"{base_url}/v1/forms/contact",
        json={
            "name": "Ana",
            "email": "ana@example.com",
            "phone": "+34 600 123 456",
            "subject": "Invoice",
            "message": "hi",
        },
        timeout=30,
    )
    assert form.status_code == 202, form.text
    both = contact_until(
        base_url,
        ticket["contact"]["id"],
        lambda c: len(c["tickets"]) == 2,
        "the form ticket joins the WhatsApp contact",
    )
    assert form.json()["ticket_id"] in both["tickets"] and "phone:+34600123456" in both["verified"]


async def test_a_forged_or_missing_signature_is_refused_and_publishes_nothing(
    services: ServiceProcesses, fake_whatsapp: FakeWhatsAppApi, settings
):
    base_url = start_stack(services, fake_whatsapp)
    payload = text_message("wamid.F1", "hello", int(time.time()))
    assert post_webhook(base_url, payload, secret="not-the-app-secret").status_code == 403
    body, _ = signed(payload, APP_SECRET)
    unsigned = httpx.post(f"{base_url}/v1/whatsapp/webhook", content=body, timeout=30)
    assert unsigned.status_code == 401
    assert await topic_size(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(INBOUND)) == 0

    challenge = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    verified = httpx.get(f"{base_url}/v1/whatsapp/webhook", params=challenge, timeout=10)
    assert verified.status_code == 200 and verified.text == "1158201444"
    wrong = httpx.get(f"{base_url}/v1/whatsapp/webhook", params={**challenge, "hub.verify_token": "x"}, timeout=10)
    assert wrong.status_code == 403


def test_a_reply_outside_the_24_hour_window_is_held_and_the_agent_told(
    services: ServiceProcesses, fake_whatsapp: FakeWhatsAppApi, fake_slack
):
    base_url = start_stack(services, fake_whatsapp, "router", "notifier")
    yesterday = int(time.time()) - 25 * 3600

    assert post_webhook(base_url, text_message("wamid.OLD", "Still broken", yesterday)).status_code == 200
    announcement = fake_slack.wait_for_calls_sync("chat.postMessage", timeout=30)[0]
    ticket_id = re.search(r"SB-\d+", announcement.args["text"]).group(0)
    reply_as_agent(services.settings, ticket_id, "Fixed now?")
    [told] = fake_slack.wait_for_calls_sync(
        "chat.postMessage", timeout=30, predicate=lambda call: "held" in (call.args.get("text") or "")
    )
    assert "support_follow_up" in told.args["text"] and told.args.get("thread_ts")
    assert fake_whatsapp.calls_to("messages") == [], "neither the acknowledgement nor the reply went out"


# --- Any signed webhook ------------------------------------------------------------------------------

_leaf = plausible_or_anything(st.text(max_size=30))
_fields = ["id", "body", "caption", "mime_type", "filename", "voice", "latitude", "longitude", "name", "address"]
_fields += ["type", "button_reply", "list_reply", "title", "description", "payload", "text", "emoji", "errors"]
_content = st.dictionaries(st.sampled_from(_fields), st.one_of(_leaf, json_values, st.just("2001")), max_size=6)
_types = ["text", "image", "audio", "video", "document", "sticker", "location", "contacts", "interactive", "button"]
_whatsapp_message = st.builds(
    lambda kind, content, fields: {"type": kind, kind if isinstance(kind, str) else "x": content, **fields},
    plausible_or_anything(st.sampled_from([*_types, "reaction", "order", "unsupported"])),
    _content,
    st.fixed_dictionaries(
        {},
        optional={
            "from": plausible_or_anything(st.just(ANA)),
            "id": plausible_or_anything(st.text(min_size=1, max_size=20).map(lambda text: f"wamid.{text}")),
            "timestamp": plausible_or_anything(st.integers(min_value=-(2**40), max_value=2**40).map(str)),
            "context": json_values,
            "contacts": json_values,
            "forwarded": json_values,
        },
    ),
)
_status = st.fixed_dictionaries(
    {},
    optional={
        "id": _leaf,
        "status": plausible_or_anything(st.sampled_from(["sent", "delivered", "read", "failed"])),
        "timestamp": plausible_or_anything(st.integers(min_value=0, max_value=2**34).map(str)),
        "biz_opaque_callback_data": plausible_or_anything(st.just("SB-1001 reply -")),
        "errors": json_values,
    },
)
_webhooks = st.builds(
    lambda messages, statuses, metadata: {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {"field": "messages", "value": {"metadata": metadata, "messages": messages, "statuses": statuses}}
                ],
            }
        ],
    },
    st.lists(_whatsapp_message, max_size=3),
    st.lists(_status, max_size=2),
    plausible_or_anything(st.just({"phone_number_id": DEFAULT_PHONE_NUMBER_ID})),
)


@pytest.fixture
async def whatsapp_app(settings, fake_whatsapp: FakeWhatsAppApi) -> AsyncIterator[httpx.AsyncClient]:
    env = whatsapp_env(fake_whatsapp)
    with_whatsapp = settings.model_copy(
        update={
            "whatsapp_verify_token": SecretStr(env["SWITCHBOARD_WHATSAPP_VERIFY_TOKEN"]),
            "whatsapp_app_secret": SecretStr(APP_SECRET),
            "whatsapp_access_token": SecretStr(fake_whatsapp.access_token),
            "whatsapp_phone_number_id": fake_whatsapp.phone_number_id,
            "whatsapp_api_url": fake_whatsapp.base_url,
        }
    )
    fake_whatsapp.add_media("2001", b"\x89PNG fake photo", "image/png")
    async with in_process_client(create_app(with_whatsapp)) as client:
        yield client


@pytest.mark.slow
@settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(payload=st.one_of(_webhooks, json_values))
async def test_any_signed_webhook_is_answered_below_500(whatsapp_app, payload):
    body, headers = signed(payload, APP_SECRET)
    response = await whatsapp_app.post("/v1/whatsapp/webhook", content=body, headers=headers)
    assert response.status_code < 500, response.text[:500]


async def test_replay_rebuilds_what_whatsapp_left_in_redis(
    services: ServiceProcesses, fake_whatsapp: FakeWhatsAppApi, settings
):
    base_url = start_stack(services, fake_whatsapp, "router", "sla", "notifier")
    now = int(time.time())
    assert post_webhook(base_url, text_message("wamid.R1", "Where is my refund?", now)).status_code == 200
    [ack] = fake_whatsapp.wait_for_calls_sync("messages", timeout=30)
    ticket_id = ack.args["biz_opaque_callback_data"].split()[0]
    wamid = ack.response["messages"][0]["id"]
    delivered = status_webhook(
        wamid, "delivered", recipient=ANA, timestamp=now + 1, tracking=ack.args["biz_opaque_callback_data"]
    )
    assert post_webhook(base_url, delivered).status_code == 200
    wait_for_ticket(
        base_url, ticket_id, API_TOKEN, lambda t: any(h["type"] == "message.status_reported" for h in t["history"])
    )
    await settle(settings)
    before = projections(settings.redis_url)

    redis.Redis.from_url(settings.redis_url).flushdb()
    replay(settings)

    assert_same_projections(before, projections(settings.redis_url))
    # The number still leads to its ticket, and Meta's redelivery of the first message still adds nothing.
    assert post_webhook(base_url, text_message("wamid.R1", "Where is my refund?", now)).status_code == 200
    assert post_webhook(base_url, text_message("wamid.R2", "Any news?", now + 2)).status_code == 200
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: len(t["messages"]) >= 2)
    assert [m["text"] for m in ticket["messages"]] == ["Where is my refund?", "Any news?"]
