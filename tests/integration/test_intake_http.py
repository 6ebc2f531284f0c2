"""intake-http in-process against the real broker and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.intake.core import Intake
from services.intake.http import create_app
from shared.events import InboundMessage
from shared.ids import is_ticket_id
from shared.settings import Settings
from shared.state import forget_restored
from shared.topics import INBOUND, Topics
from tests.conftest import API_TOKEN
from tests.support import in_process_client, read_topic, topic_size

pytestmark = pytest.mark.integration

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
FORM = {
    "name": "Ana",
    "email": "ana@example.com",
    "subject": "Cannot log in",
    "message": "It says my password is wrong.",
}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_client(create_app(settings)) as client:
        yield client


def inbound_topic(settings: Settings) -> str:
    return Topics(settings.topic_prefix).name(INBOUND)


async def test_a_form_becomes_one_inbound_message_keyed_by_its_ticket(client, settings):
    response = await client.post("/v1/forms/contact", json=FORM)
    assert response.status_code == 202, response.text
    body = response.json()
    assert is_ticket_id(body["ticket_id"])
    [record] = await read_topic(settings.kafka_bootstrap, inbound_topic(settings), at_least=1)
    assert record.key == body["ticket_id"].encode()
    message = InboundMessage.model_validate_json(record.value)
    assert str(message.message_id) == body["message_id"]
    assert message.ticket_id == body["ticket_id"]
    assert message.sender.email == "ana@example.com" and message.text == FORM["message"]


async def test_multipart_and_urlencoded_forms_are_accepted_too(client):
    multipart = await client.post("/v1/forms/contact", files={k: (None, v) for k, v in FORM.items()})
    assert multipart.status_code == 202, multipart.text
    urlencoded = await client.post("/v1/forms/contact", data=FORM)
    assert urlencoded.status_code == 202, urlencoded.text


async def test_file_parts_are_refused_by_name(client, settings):
    response = await client.post(
        "/v1/forms/contact", data=FORM, files={"screenshot": ("shot.png", b"\x89PNG", "image/png")}
    )
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["detail"]] == ["screenshot"]
    assert await topic_size(settings.kafka_bootstrap, inbound_topic(settings)) == 0


async def test_each_submission_gets_its_own_ticket_id(client):
    first = (await client.post("/v1/forms/contact", json=FORM)).json()
    second = (await client.post("/v1/forms/contact", json=FORM)).json()
    assert first["ticket_id"] != second["ticket_id"]


async def test_the_same_idempotency_key_yields_the_same_ticket_and_message(client):
    headers = {"Idempotency-Key": "retry-42"}
    first = await client.post("/v1/forms/contact", json=FORM, headers=headers)
    second = await client.post("/v1/forms/contact", json=FORM, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "(body)"),
        ({"json": {k: v for k, v in FORM.items() if k != "email"}}, 422, "email"),
        ({"json": {**FORM, "email": "nope"}}, 422, "email"),
        ({"json": [FORM]}, 422, "(body)"),
        ({"json": {**FORM, "message": "x" * (2 * 1024 * 1024)}}, 413, "(body)"),
        ({"content": b"name=Ana", "headers": {"content-type": "text/plain"}}, 415, "(content-type)"),
    ],
    ids=["bad-json", "missing-email", "invalid-email", "not-an-object", "2MB-body", "wrong-type"],
)
async def test_bad_input_is_refused_with_field_errors_and_nothing_reaches_kafka(
    client, settings, kwargs, status, field
):
    response = await client.post("/v1/forms/contact", **kwargs)
    assert response.status_code == status, response.text
    assert field in [error["field"] for error in response.json()["detail"]]
    assert await topic_size(settings.kafka_bootstrap, inbound_topic(settings)) == 0


async def test_a_body_that_cannot_be_read_is_refused_in_the_browsers_language(client, settings):
    """No `language` field can be read from it: Accept-Language, else the desk's; `type` stays English."""
    wrong_type = {"content": b"name=Ana", "headers": {"content-type": "text/plain"}}
    english = await client.post("/v1/forms/contact", **wrong_type)
    assert english.status_code == 415
    assert english.json()["detail"] == [
        {
            "field": "(content-type)",
            "message": "send application/json, application/x-www-form-urlencoded or multipart/form-data",
            "type": "unsupported_media_type",
        }
    ]
    chinese = await client.post(
        "/v1/forms/contact", content=b"name=Ana", headers={"content-type": "text/plain", **CHINESE}
    )
    assert chinese.status_code == 415
    assert chinese.json()["detail"] == [
        {
            "field": "(content-type)",
            "message": "请以 application/json、application/x-www-form-urlencoded 或 multipart/form-data 格式发送。",
            "type": "unsupported_media_type",
        }
    ]
    attachment = {"data": FORM, "files": {"screenshot": ("shot.png", b"\x89PNG", "image/png")}}
    assert (await client.post("/v1/forms/contact", **attachment)).json()["detail"] == [
        {"field": "screenshot", "message": "attachments are not accepted on this form", "type": "attachment_rejected"}
    ]
    assert (await client.post("/v1/forms/contact", **attachment, headers=CHINESE)).json()["detail"] == [
        {"field": "screenshot", "message": "此表单不接受附件。", "type": "attachment_rejected"}
    ]
    not_json = {"content": b"[1]", "headers": {"content-type": "application/json"}}
    assert (await client.post("/v1/forms/contact", **not_json)).json()["detail"] == [
        {"field": "(body)", "message": "expected a JSON object, got a JSON array", "type": "object_type"}
    ]
    not_json["headers"].update(CHINESE)
    assert (await client.post("/v1/forms/contact", **not_json)).json()["detail"] == [
        {"field": "(body)", "message": "应为 JSON 对象，收到的是 array。", "type": "object_type"}
    ]
    too_large = await client.post("/v1/forms/contact", json={**FORM, "message": "x" * (2 * 1024 * 1024)})
    assert too_large.status_code == 413
    assert too_large.json()["detail"] == [
        {"field": "(body)", "message": "body exceeds 1048576 bytes", "type": "too_large"}
    ]
    too_large = await client.post(
        "/v1/forms/contact", json={**FORM, "message": "x" * (2 * 1024 * 1024)}, headers=CHINESE
    )
    assert too_large.status_code == 413
    assert too_large.json()["detail"] == [
        {"field": "(body)", "message": "请求正文超过 1048576 字节。", "type": "too_large"}
    ]
    assert await topic_size(settings.kafka_bootstrap, inbound_topic(settings)) == 0


async def test_redis_down_is_a_503_in_the_browsers_language(client, settings, monkeypatch):
    async def store_down(_intake: Intake, _key: str, **_: object) -> None:
        raise RedisConnectionError("redis unreachable")

    monkeypatch.setattr(Intake, "resolve_ticket", store_down)
    english = await client.post("/v1/forms/contact", json=FORM)
    assert english.status_code == 503 and english.json() == {"detail": "ticket store unavailable, retry later"}
    chinese = await client.post("/v1/forms/contact", json=FORM, headers=CHINESE)
    assert chinese.status_code == 503 and chinese.json() == {"detail": "工单存储暂时不可用，请稍后重试。"}
    assert await topic_size(settings.kafka_bootstrap, inbound_topic(settings)) == 0


async def test_an_idempotency_key_past_255_characters_is_a_field_error(client, settings):
    response = await client.post("/v1/forms/contact", json=FORM, headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"field": "idempotency-key", "message": "Please keep this under 255 characters.", "type": "string_too_long"}
    ]
    # Refused before the body is read: in the browser's language (issue 15).
    chinese = await client.post("/v1/forms/contact", json=FORM, headers={"Idempotency-Key": "k" * 256, **CHINESE})
    assert chinese.status_code == 422
    assert chinese.json()["detail"] == [
        {"field": "idempotency-key", "message": "请不要超过 255 个字符。", "type": "string_too_long"}
    ]
    assert await topic_size(settings.kafka_bootstrap, inbound_topic(settings)) == 0


async def test_while_redis_lost_its_state_a_form_is_503_and_nothing_reaches_kafka(client, settings):
    redis = Redis.from_url(settings.redis_url)
    try:
        await forget_restored(redis)
        response = await client.post("/v1/forms/contact", json=FORM)
    finally:
        await redis.aclose()
    assert response.status_code == 503
    assert await topic_size(settings.kafka_bootstrap, inbound_topic(settings)) == 0


async def test_unknown_forms_are_404_in_the_readers_language(client):
    english = await client.post("/v1/forms/nope", json=FORM)
    assert english.status_code == 404 and english.json() == {"detail": "unknown form 'nope'"}
    chinese = await client.post("/v1/forms/nope", json=FORM, headers=CHINESE)
    assert chinese.status_code == 404 and chinese.json() == {"detail": "没有此表单：'nope'"}
    stamp = await client.get("/v1/forms/nope/stamp", headers=CHINESE)
    assert stamp.status_code == 404 and stamp.json() == {"detail": "没有此表单：'nope'"}


async def test_a_form_kafka_did_not_take_is_a_503_in_the_readers_language(client, settings, monkeypatch):
    """The form's `language`, else Accept-Language (issue 15); the sender is told to retry either way."""

    async def broker_down(_intake: Intake, _message: InboundMessage) -> None:
        raise KafkaConnectionError("broker unreachable")

    monkeypatch.setattr(Intake, "publish", broker_down)
    english = await client.post("/v1/forms/contact", json=FORM)
    assert english.status_code == 503 and english.json() == {"detail": "message queue unavailable, retry later"}
    chinese = await client.post("/v1/forms/contact", json=FORM, headers=CHINESE)
    assert chinese.status_code == 503 and chinese.json() == {"detail": "消息队列暂时不可用，请稍后重试。"}
    picked = await client.post(
        "/v1/forms/contact", json={**FORM, "language": "zh-Hans"}, headers={"Accept-Language": "en"}
    )
    assert picked.json() == chinese.json()
    assert await topic_size(settings.kafka_bootstrap, inbound_topic(settings)) == 0


async def test_the_read_api_needs_the_token(client):
    assert (await client.get("/v1/tickets/SB-1001")).status_code == 401
    wrong = await client.get("/v1/tickets/SB-1001", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    missing = await client.get("/v1/tickets/SB-1001", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert missing.status_code == 404


async def test_health_readiness_and_metrics(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"kafka": True, "redis": True, "state": True}
    await client.post("/v1/forms/contact", json=FORM)
    metrics = (await client.get("/metrics")).text
    assert 'switchboard_intake_forms_total{outcome="accepted"} 1.0' in metrics


async def test_a_w3c_traceparent_travels_with_the_message_and_a_malformed_one_is_dropped(client, settings):
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await client.post("/v1/forms/contact", json=FORM, headers={"traceparent": traceparent})
    dropped = await client.post("/v1/forms/contact", json=FORM, headers={"traceparent": "garbage" * 50})
    assert dropped.status_code == 202
    records = await read_topic(settings.kafka_bootstrap, inbound_topic(settings), at_least=2)
    carried = sorted((InboundMessage.model_validate_json(r.value).traceparent or "", dict(r.headers)) for r in records)
    assert carried[0][0] == "" and "traceparent" not in carried[0][1]
    assert carried[1][0] == traceparent and carried[1][1]["traceparent"] == traceparent.encode()
