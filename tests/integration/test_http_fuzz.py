"""Fuzzing intake-http: any bytes at any endpoint get an answer below 500, and only a valid message
reaches the inbound topic.

Requests vary the method, path parameters, query, headers (non-ASCII and Latin-1 bytes included),
credentials (none, wrong, right), content types and bodies (random bytes, JSON of any depth, form
encodings, Telegram- and Slack-shaped payloads with random leaves, declared and actual sizes past
the limits, chunked). They go to the whole app in this process, on the real broker and Redis; the
web chat is fuzzed over a real WebSocket against a real intake-http process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.intake.csat import CSAT_PATH
from services.intake.http import MAX_BODY_BYTES, MAX_TELEGRAM_BODY_BYTES
from services.intake.telegram import SECRET_HEADER
from shared.csat import CsatSubject, CsatTokens, csat_secret
from shared.settings import EXAMPLE_CONFIG, Settings
from shared.topics import Topics
from switchboard.stack import free_loopback_port
from tests.conftest import API_TOKEN, TELEGRAM_SECRET
from tests.conftest import _delete_topics as delete_topics
from tests.fuzz_inputs import (
    CONTENT_TYPES,
    as_bytes,
    content_types,
    deep_json,
    form_fields,
    form_values,
    header_values,
    json_form,
    json_values,
    multipart,
    multipart_parts,
    path_segments,
    slack_file_shares,
    slack_message,
    slack_message_changed,
    slack_payloads,
    telegram_updates,
    urlencoded,
)
from tests.integration.conftest import InboundCount, slack_signed
from tests.support import ServiceProcesses

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FUZZ = settings(
    deadline=None,
    # One app serves every example; Kafka and Redis make a slow example normal here.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND"]


@dataclass
class Body:
    content: bytes
    content_type: str | bytes | None
    # "exact": Content-Length as sent; "declared": a Content-Length far past any limit; "chunked": no
    # Content-Length; "overflow": chunked, then past the limit.
    size: str = "exact"


bodies = st.one_of(
    st.builds(Body, st.binary(max_size=2048), content_types),
    st.builds(Body, json_values.map(lambda value: json.dumps(value).encode()), content_types),
    st.builds(Body, deep_json, content_types),
    st.builds(Body, form_fields.map(urlencoded), st.just("application/x-www-form-urlencoded")),
    st.builds(Body, multipart_parts.map(multipart), st.sampled_from(CONTENT_TYPES[3:5])),
    st.builds(Body, telegram_updates.map(lambda value: json.dumps(value).encode()), st.just("application/json")),
    st.builds(Body, slack_payloads.map(lambda value: json.dumps(value).encode()), st.just("application/json")),
)
bodies = st.builds(
    lambda body, size: Body(body.content, body.content_type, size),
    bodies,
    st.sampled_from(["exact", "exact", "exact", "chunked", "declared", "overflow"]),
)


@dataclass
class FuzzRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, bytes] = field(default_factory=dict)
    body: Body | None = None
    # Sign (Slack), or send the secret (Telegram) or token (read API) that opens the endpoint.
    authentic: bool = False


endpoints = st.one_of(
    st.just("/v1/forms/contact"),
    path_segments.map(lambda segment: f"/v1/forms/{segment}"),
    path_segments.map(lambda segment: f"/v1/tickets/{segment}"),
    path_segments.map(lambda segment: f"/v1/contacts/{segment}"),
    path_segments.map(lambda segment: f"/v1/quarantine/{segment}"),
    path_segments.map(lambda segment: f"/v1/csat/{segment}"),
    st.just("/v1/quarantine"),
    path_segments.map(lambda segment: f"/kb/{segment}"),
    path_segments.map(lambda segment: f"/kb/solved/{segment}"),
    st.sampled_from(["/v1/kb/search", "/kb"]),
    st.sampled_from(
        ["/v1/telegram/webhook", "/v1/slack/events", "/", "/healthz", "/readyz", "/metrics", "/v1/chat", "/v1/i18n"]
    ),
    path_segments.map(lambda segment: f"/static/{segment}"),
    path_segments.map(lambda segment: f"/{segment}"),
)
header_names = st.sampled_from(
    [
        "authorization",
        "idempotency-key",
        "traceparent",
        "x-slack-signature",
        "x-slack-request-timestamp",
        SECRET_HEADER.lower(),
        "accept",
        "accept-language",
        "cookie",
        "x-forwarded-for",
        "content-type",
    ]
)
requests = st.builds(
    FuzzRequest,
    method=st.sampled_from(["POST", "POST", "GET", *METHODS]),
    path=endpoints,
    query=st.dictionaries(
        st.sampled_from(["limit", "channel", "reason", "q", "language", "lang"]) | st.text(max_size=8),
        st.text(max_size=20),
        max_size=3,
    ),
    headers=st.dictionaries(header_names, header_values, max_size=4),
    body=st.none() | bodies,
    authentic=st.booleans(),
)


# --- Sending one, and what must hold ---------------------------------------------------------------


async def send(client: httpx.AsyncClient, request: FuzzRequest) -> httpx.Response:
    headers = dict(request.headers)
    body = request.body
    content: bytes | AsyncIterator[bytes] | None = None
    if body is not None:
        if body.content_type is not None:
            headers["content-type"] = as_bytes(body.content_type)
        content = body.content
        limit = MAX_TELEGRAM_BODY_BYTES if request.path == "/v1/telegram/webhook" else MAX_BODY_BYTES
        if body.size == "declared":
            headers["content-length"] = str(50 * 1024 * 1024).encode()
        elif body.size in ("chunked", "overflow"):
            content = _chunks(body.content, limit + 1 if body.size == "overflow" else 0)
    if request.authentic:
        headers.update(_credentials(request.path, body.content if body is not None else b""))
    return await client.request(request.method, request.path, params=request.query, headers=headers, content=content)


async def _chunks(start: bytes, total: int) -> AsyncIterator[bytes]:
    yield start
    sent = len(start)
    while sent < total:
        chunk = b"x" * min(256 * 1024, total - sent)
        sent += len(chunk)
        yield chunk


def _credentials(path: str, body: bytes) -> dict[str, bytes]:
    if path == "/v1/telegram/webhook":
        return {SECRET_HEADER: TELEGRAM_SECRET.encode()}
    if path.startswith(("/v1/tickets/", "/v1/contacts/", "/v1/quarantine")):
        return {"authorization": f"Bearer {API_TOKEN}".encode()}
    try:
        return {name: value.encode() for name, value in slack_signed(body).items()}
    except UnicodeDecodeError:
        # Slack signs text; bytes that are no UTF-8 cannot be signed.
        return {}


async def check(client: httpx.AsyncClient, inbound_count: InboundCount, request: FuzzRequest) -> None:
    before = await inbound_count()
    response = await send(client, request)
    published = await inbound_count() - before
    # Seen with --hypothesis-show-statistics: how the examples spread over the answers.
    event(f"HTTP {response.status_code}{', published' if published else ''}")
    assert response.status_code < 500, f"{response.status_code} {response.text[:500]}"
    if response.status_code >= 300:
        assert published == 0, f"{published} message(s) published, yet the request got {response.status_code}"
    elif request.path.startswith("/v1/forms/") and response.status_code == 202:
        assert published == 1
    else:
        assert published <= 1


# --- The fuzz tests ----------------------------------------------------------------------------------


@settings(FUZZ, max_examples=400)
@given(request=requests)
async def test_any_request_to_any_endpoint_is_answered_below_500(intake_http, inbound_count, request):
    await check(intake_http, inbound_count, request)


@settings(FUZZ, max_examples=300)
@given(
    payload=st.one_of(telegram_updates, json_values, deep_json),
    path=st.just("/v1/telegram/webhook"),
)
async def test_any_update_with_the_telegram_secret_is_answered_below_500(intake_http, inbound_count, payload, path):
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = FuzzRequest("POST", path, {}, body=Body(content, "application/json"), authentic=True)
    await check(intake_http, inbound_count, request)


@settings(FUZZ, max_examples=300)
@given(
    payload=st.one_of(
        slack_payloads,
        slack_message.map(lambda event: {"type": "event_callback", "event_id": "Ev1", "event": event}),
        slack_message_changed.map(lambda event: {"type": "event_callback", "event_id": "Ev2", "event": event}),
        slack_file_shares.map(lambda event: {"type": "event_callback", "event_id": "Ev3", "event": event}),
        json_values,
    ),
    form=st.booleans(),
    with_hosted_file=st.booleans(),
)
async def test_any_signed_slack_body_is_answered_below_500(
    intake_http, inbound_count, fake_slack, payload, form, with_hosted_file
):
    event = payload.get("event") if isinstance(payload, dict) else None
    if with_hosted_file and isinstance(event, dict) and isinstance(event.get("files"), list):
        # A file the (fake) Slack really serves, so that downloads and storage are fuzzed too.
        event["files"].append(fake_slack.add_file(b"\x89PNG screenshot", "shot.png", "image/png"))
    content = json.dumps(payload).encode()
    if form:
        # Interactivity posts its JSON as the `payload` field of a form.
        body = Body(b"payload=" + quote(content).encode(), "application/x-www-form-urlencoded")
    else:
        body = Body(content, "application/json")
    await check(intake_http, inbound_count, FuzzRequest("POST", "/v1/slack/events", {}, body=body, authentic=True))


@settings(FUZZ, max_examples=200)
@given(
    body=st.one_of(
        st.builds(Body, form_fields.map(urlencoded), st.just("application/x-www-form-urlencoded")),
        st.builds(Body, multipart_parts.map(multipart), st.just("multipart/form-data; boundary=b")),
        st.builds(Body, form_fields.map(json_form), st.just("application/json")),
    ),
    idempotency_key=st.none() | header_values,
)
async def test_any_form_submission_is_accepted_or_refused_by_field(intake_http, inbound_count, body, idempotency_key):
    headers = {"idempotency-key": idempotency_key} if idempotency_key is not None else {}
    await check(intake_http, inbound_count, FuzzRequest("POST", "/v1/forms/contact", {}, headers, body))


rating_fields = st.dictionaries(
    st.sampled_from(["score", "comment"]) | st.text(max_size=8),
    st.sampled_from(["1", "5", "0", "6", "4.0", " 3 ", "x" * 2_001]) | form_values,
    max_size=3,
)


@settings(FUZZ, max_examples=150)
@given(
    body=st.one_of(
        st.builds(Body, rating_fields.map(urlencoded), st.just("application/x-www-form-urlencoded")),
        st.builds(Body, rating_fields.map(json_form), st.just("application/json")),
        st.builds(Body, json_values.map(lambda value: json.dumps(value).encode()), content_types),
        st.builds(Body, multipart_parts.map(multipart), st.just("multipart/form-data; boundary=b")),
    )
)
async def test_any_rating_with_a_valid_link_is_thanked_or_refused_by_field(
    intake_http, inbound_count, all_channels, body
):
    token = CsatTokens(csat_secret(all_channels)).issue(CsatSubject("SB-1042", 1))
    response = await send(intake_http, FuzzRequest("POST", CSAT_PATH.format(token=token), {}, body=body))
    event(f"HTTP {response.status_code}")
    assert response.status_code in (200, 415, 422), f"{response.status_code} {response.text[:500]}"


# --- The web chat, over a real WebSocket --------------------------------------------------------------

# RFC 6455 §7.4.1: the codes a server closes with for a peer's fault (or a normal end); 1011 is a crash.
PEER_FAULT_CLOSE_CODES = {1000, 1003, 1007, 1008, 1009, 1013}
hello = st.fixed_dictionaries(
    {"type": st.just("hello")},
    optional={"name": json_values, "email": json_values, "token": json_values, "last_seen": json_values},
)
chat_frames = st.one_of(
    hello.map(json.dumps),
    st.fixed_dictionaries({"type": st.just("message"), "text": json_values}).map(json.dumps),
    st.fixed_dictionaries({"type": st.just("csat"), "resolution": json_values, "score": json_values}).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
    deep_json,
    st.integers(min_value=16_000, max_value=64_000).map(lambda n: json.dumps({"type": "message", "text": "x" * n})),
)


@pytest.fixture(scope="module")
def chat_url(tmp_path_factory, infra):
    """A real intake-http process for the whole module: the WebSocket examples share it."""
    settings_ = Settings(
        kafka_bootstrap=infra.kafka_bootstrap,
        redis_url=infra.redis_url,
        topic_prefix="tchatfuzz.",
        data_dir=tmp_path_factory.mktemp("chat-fuzz"),
        config=EXAMPLE_CONFIG,
        api_token=API_TOKEN,
        http_port=free_loopback_port(),
    )
    processes = ServiceProcesses(settings_, settings_.data_dir / "logs")
    try:
        yield processes.start_http().replace("http://", "ws://") + "/v1/chat", processes
    finally:
        processes.stop_all()
        asyncio.run(delete_topics(infra.kafka_bootstrap, Topics(settings_.topic_prefix).all_names()))


@settings(FUZZ, max_examples=80)
@given(frames=st.lists(chat_frames, min_size=1, max_size=4), start_with_hello=st.booleans())
async def test_any_chat_frames_get_frames_or_a_clean_close(chat_url, frames, start_with_hello):
    url, processes = chat_url
    if start_with_hello:
        frames = [json.dumps({"type": "hello", "name": "Ana"}), *frames]
    try:
        async with connect(url, max_size=None) as websocket:
            for frame in frames:
                await websocket.send(frame)
            # Whatever the server answers, it either keeps the session open or closes it cleanly.
            while True:
                await asyncio.wait_for(websocket.recv(), 0.3)
    except TimeoutError:
        pass
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
        assert code in PEER_FAULT_CLOSE_CODES, f"closed with {code}:\n{processes.log('intake-http')}"
    except InvalidStatus as refused:
        pytest.fail(f"handshake refused: {refused.response.status_code}")
    assert "Traceback" not in processes.log("intake-http")
