"""Bytes that are not what an endpoint expects get a 4xx and publish nothing: the field probes of issue 7.

Every test runs the whole intake-http app (every channel on) against the real broker and Redis.
"""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from services.intake.http import MAX_BODY_BYTES, MAX_MULTIPART_BODY_BYTES, MAX_TELEGRAM_BODY_BYTES
from services.intake.telegram import SECRET_HEADER
from tests.conftest import API_TOKEN, TELEGRAM_SECRET
from tests.integration.conftest import slack_signed

pytestmark = pytest.mark.integration

FORM = {"name": "Ana", "email": "ana@example.com", "subject": "Cannot log in", "message": "It says no."}
DEEP_JSON = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000
CHUNK = 64 * 1024


class ChunkedBody:
    """A body of `total` bytes sent in chunks with no Content-Length; counts what was read of it."""

    def __init__(self, total: int, *, start: bytes = b""):
        self.total = total
        self.start = start
        self.chunk = b"x" * CHUNK
        self.read = 0

    async def __aiter__(self):
        if self.start:
            self.read += len(self.start)
            yield self.start
        while self.read < self.total:
            self.read += len(self.chunk)
            yield self.chunk


@pytest.mark.parametrize("body", [DEEP_JSON, DEEP_OBJECT], ids=["arrays", "objects"])
async def test_json_nested_a_thousand_levels_is_a_4xx_everywhere(intake_http, inbound_count, body):
    json_type = {"content-type": "application/json"}
    form = await intake_http.post("/v1/forms/contact", content=body, headers=json_type)
    assert form.status_code == 422, form.text
    assert form.json()["detail"][0]["type"] == "json_invalid"
    telegram = await intake_http.post("/v1/telegram/webhook", content=body, headers={SECRET_HEADER: TELEGRAM_SECRET})
    assert telegram.status_code == 400, telegram.text
    slack = await intake_http.post("/v1/slack/events", content=body, headers={**json_type, **slack_signed(body)})
    assert slack.status_code == 400, slack.text
    assert await inbound_count() == 0


@pytest.mark.parametrize(
    "token", [b"Bearer \xe9", b"Bearer caf\xc3\xa9", b"\xff\xfe"], ids=["latin-1", "utf-8", "junk"]
)
async def test_a_non_ascii_bearer_token_is_401(intake_http, token):
    for path in ("/v1/tickets/SB-1001", "/v1/contacts/C-1"):
        response = await intake_http.get(path, headers={"Authorization": token})
        assert response.status_code == 401, response.text


async def test_the_right_token_still_opens_the_read_api(intake_http):
    response = await intake_http.get("/v1/tickets/SB-1001", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("signature", "timestamp"),
    [(b"v0=\xe9", None), ("v0=" + "e" * 64, b"17\xe90"), (b"\xff" * 67, b"\xff")],
    ids=["signature", "timestamp", "both"],
)
async def test_non_ascii_slack_signature_headers_are_401(intake_http, inbound_count, signature, timestamp):
    body = json.dumps({"type": "event_callback", "event_id": "Ev1", "event": {"type": "message"}}).encode()
    headers = slack_signed(body)
    headers["X-Slack-Signature"] = signature
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    response = await intake_http.post("/v1/slack/events", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert await inbound_count() == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[1, 2]", "application/json"),
        (b'"hello"', "application/json"),
        (b"null", "application/json"),
        (b"{not json", "application/json"),
        (b'{"type": "event_callback", "event": "message", "event_id": "Ev1"}', "application/json"),
        (b'{"type": "event_callback", "event": {"type": "message"}}', "application/json"),
        (b'{"type": "event_callback", "event_id": "Ev1", "event": {"type": "message", "user": 42}}', None),
        (b'{"type": "event_callback", "authorizations": [1], "event_id": "Ev1", "event": {}}', None),
        (b'{"type": "block_actions", "response_urls": null}', None),
        (b"payload=%5B1%5D", "application/x-www-form-urlencoded"),
        (b"payload=" + b"%5B" * 1000, "application/x-www-form-urlencoded"),
    ],
    ids=[
        "array",
        "string",
        "null",
        "not-json",
        "event-not-object",
        "no-event-id",
        "user-a-number",
        "authorization-not-object",
        "response-urls-null",
        "form-payload-array",
        "form-payload-deep",
    ],
)
async def test_a_signed_slack_body_that_is_no_slack_payload_is_400(intake_http, inbound_count, body, content_type):
    headers = slack_signed(body)
    if content_type:
        headers["Content-Type"] = content_type
    response = await intake_http.post("/v1/slack/events", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("not a Slack payload")
    assert await inbound_count() == 0


@pytest.mark.parametrize(
    "encode",
    [
        lambda fields: {"content": "&".join(f"{k}={v}" for k, v in fields.items()).encode()},
        lambda fields: {"files": {k: (None, v.encode("latin-1") if k == "name" else v) for k, v in fields.items()}},
    ],
    ids=["urlencoded", "multipart"],
)
async def test_text_that_is_not_utf8_is_a_field_error_not_mojibake(intake_http, inbound_count, encode):
    fields = {**FORM, "name": "Ana%FF%FE"}
    kwargs = encode(fields)
    if "content" in kwargs:
        kwargs["headers"] = {"content-type": "application/x-www-form-urlencoded"}
    else:
        kwargs["files"]["name"] = (None, b"Ana\xff\xfe")
    response = await intake_http.post("/v1/forms/contact", **kwargs)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error == {
        "field": "name",
        "message": "not valid utf-8 text (byte 3 cannot be decoded)",
        "type": "string_unicode",
    }
    # In the browser's language: a body refused by field has no `language` to go by.
    headers = {**kwargs.pop("headers", {}), "Accept-Language": "zh-Hans"}
    chinese = await intake_http.post("/v1/forms/contact", **kwargs, headers=headers)
    assert chinese.json()["detail"] == [
        {"field": "name", "message": "不是有效的 utf-8 文本（第 3 个字节无法解码）。", "type": "string_unicode"}
    ]
    assert await inbound_count() == 0


async def test_utf8_forms_still_arrive_intact(intake_http, inbound_count):
    response = await intake_http.post("/v1/forms/contact", data={**FORM, "name": "Zoë Ñúñez 李"})
    assert response.status_code == 202, response.text
    multipart = await intake_http.post("/v1/forms/contact", files={k: (None, v) for k, v in FORM.items()})
    assert multipart.status_code == 202, multipart.text
    assert await inbound_count() == 2


@pytest.mark.parametrize(
    ("path", "headers", "start", "limit"),
    [
        ("/v1/forms/contact", {"content-type": "application/json"}, b'{"message": "', MAX_BODY_BYTES),
        ("/v1/forms/contact", {"content-type": "application/x-www-form-urlencoded"}, b"message=", MAX_BODY_BYTES),
        (
            "/v1/forms/contact",
            {"content-type": "multipart/form-data; boundary=b"},
            b'--b\r\nContent-Disposition: form-data; name="message"\r\n\r\n',
            MAX_MULTIPART_BODY_BYTES,
        ),
        (
            "/v1/telegram/webhook",
            {SECRET_HEADER: TELEGRAM_SECRET},
            b'{"update_id": 1, "message": {"text": "',
            MAX_TELEGRAM_BODY_BYTES,
        ),
        # No signature at all: the size is refused before the signature check reads the body.
        (
            "/v1/slack/events",
            {"content-type": "application/json"},
            b'{"type": "event_callback", "event": {"text": "',
            MAX_BODY_BYTES,
        ),
    ],
    ids=["form-json", "form-urlencoded", "form-multipart", "telegram", "slack-unsigned"],
)
async def test_a_50mb_chunked_body_is_413_as_soon_as_it_passes_the_limit(
    intake_http, inbound_count, path, headers, start, limit
):
    body = ChunkedBody(50 * 1024 * 1024, start=start)
    response = await intake_http.post(path, content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["detail"][0]["type"] == "too_large"
    assert limit < body.read <= limit + len(start) + CHUNK
    assert await inbound_count() == 0


@pytest.mark.parametrize("path", ["/v1/forms/contact", "/v1/telegram/webhook", "/v1/slack/events"])
async def test_a_declared_length_over_the_limit_is_413_before_reading_anything(intake_http, path):
    body = ChunkedBody(MAX_TELEGRAM_BODY_BYTES + 1)
    headers = {"content-type": "application/json", "content-length": str(body.total)}
    response = await intake_http.post(path, content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert body.read == 0


def test_a_real_server_answers_a_50mb_chunked_form_413_long_before_its_end(services):
    """Through uvicorn and a real socket: what was sent before the 413 is the limit plus socket buffers."""
    base_url = services.start_http()
    sent = 0

    def body():
        nonlocal sent
        while sent < 50 * 1024 * 1024:
            sent += CHUNK
            yield b"x" * CHUNK

    response = httpx.post(
        f"{base_url}/v1/forms/contact", content=body(), headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 413, response.text
    # Loopback buffers hold a few MiB; before the fix ~28 MB were read.
    assert sent < 16 * 1024 * 1024


async def test_the_chat_refuses_binary_and_oversized_frames_with_a_close_code(services):
    url = services.start_http().replace("http://", "ws://") + "/v1/chat"
    async with connect(url) as websocket:
        await websocket.send(b"\x00\xff binary")
        assert json.loads(await websocket.recv()) == {
            "type": "error",
            "code": "bad_frame",
            "detail": "frames are JSON text, not binary",
        }
        with pytest.raises(ConnectionClosed) as closed:
            await websocket.recv()
        assert closed.value.rcvd.code == 1003
    async with connect(url, max_size=None) as websocket:
        # Past uvicorn's frame limit the server closes before reading the frame into memory.
        with pytest.raises(ConnectionClosed) as closed:
            await websocket.send("x" * (1024 * 1024))
            await websocket.recv()
        assert closed.value.rcvd.code == 1009
