"""Web chat over a real WebSocket: a session is a ticket, agent replies are pushed, reconnects resume."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from services.intake.chat import MAX_FRAME_BYTES, MAX_MESSAGE_CHARS, RATE_MAX_MESSAGES
from shared.state import forget_restored
from tests.conftest import API_TOKEN, free_port
from tests.support import ServiceProcesses, reply_as_agent, switchboard_cli, wait_for_ticket

pytestmark = pytest.mark.integration


async def next_frame(websocket, timeout: float = 30) -> dict:
    return json.loads(await asyncio.wait_for(websocket.recv(), timeout))


@pytest.fixture
def chat_stack(services: ServiceProcesses) -> str:
    services.start("router")
    services.start("notifier")
    return services.start_http()


async def test_a_chat_session_becomes_a_ticket_and_receives_agent_replies_live(chat_stack, services):
    ws_url = chat_stack.replace("http://", "ws://") + "/v1/chat"
    async with connect(ws_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "name": "Ana", "email": "ana@example.com"}))
        session = await next_frame(websocket)
        assert session["type"] == "session" and session["token"]
        ticket_id = session["ticket_id"]
        await websocket.send(json.dumps({"type": "message", "text": "Hello, my order is late"}))
        echoed = await next_frame(websocket)
        assert echoed["from"] == "customer" and echoed["text"] == "Hello, my order is late"

        ticket = wait_for_ticket(chat_stack, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
        assert ticket["channel"] == "chat" and ticket["contact"]["emails"] == ["ana@example.com"]
        reply_as_agent(services.settings, ticket_id, "Sorry! It ships today.")
        pushed = await next_frame(websocket)
        assert pushed == {**pushed, "type": "message", "from": "agent", "text": "Sorry! It ships today."}

    # The page reloads: the same session resumes the same ticket and replays what was missed.
    async with connect(ws_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "token": session["token"], "last_seen": echoed["id"]}))
        resumed = await next_frame(websocket)
        assert resumed == {"type": "session", "token": session["token"], "ticket_id": ticket_id}
        replayed = await next_frame(websocket)
        assert replayed["id"] == pushed["id"] and replayed["from"] == "agent"
        await websocket.send(json.dumps({"type": "message", "text": "Great, thanks"}))
        assert (await next_frame(websocket))["text"] == "Great, thanks"
    ticket = wait_for_ticket(chat_stack, ticket_id, API_TOKEN, lambda t: len(t["messages"]) == 3)
    assert [m["author"] for m in ticket["messages"]] == ["customer", "agent", "customer"]


async def test_form_then_chat_with_the_same_email_is_one_contact(chat_stack):
    form = {"name": "Ana", "email": "ana@example.com", "subject": "Billing", "message": "Invoice?"}
    form_ticket = httpx.post(f"{chat_stack}/v1/forms/contact", json=form, timeout=30).json()["ticket_id"]
    async with connect(chat_stack.replace("http://", "ws://") + "/v1/chat") as websocket:
        await websocket.send(json.dumps({"type": "hello", "name": "Ana", "email": "ANA@example.com"}))
        chat_ticket = (await next_frame(websocket))["ticket_id"]
        await websocket.send(json.dumps({"type": "message", "text": "About my invoice"}))
        await next_frame(websocket)
    contacts = {
        wait_for_ticket(chat_stack, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)["contact"]["id"]
        for ticket_id in (form_ticket, chat_ticket)
    }
    assert len(contacts) == 1


@pytest.mark.parametrize(
    ("frames", "code", "close_code"),
    [
        ([{"type": "hello", "token": "no-such-session"}], "unknown_session", 1008),
        ([{"type": "message", "text": "hi"}], "bad_frame", 1008),
        ([{"type": "hello"}, {"type": "message", "text": "x" * (MAX_MESSAGE_CHARS + 1)}], "too_long", 1009),
        ([{"type": "hello"}, {"type": "message", "text": ""}], "bad_frame", 1008),
        ([{"type": "hello"}, *[{"type": "message", "text": "spam"}] * (RATE_MAX_MESSAGES + 1)], "rate_limited", 1013),
    ],
    ids=["unknown-token", "no-hello", "too-long", "empty", "rate-limited"],
)
async def test_violations_get_an_error_frame_and_a_clear_close_code(chat_stack, frames, code, close_code):
    async with connect(chat_stack.replace("http://", "ws://") + "/v1/chat") as websocket:
        for frame in frames:
            await websocket.send(json.dumps(frame))
        while True:
            received = await next_frame(websocket)
            if received["type"] == "error":
                break
        assert received["code"] == code
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(websocket)
        assert closed.value.rcvd.code == close_code


@pytest.mark.parametrize(
    ("hello", "headers"),
    [
        ({"type": "hello", "language": "zh-Hans"}, {"Accept-Language": "en-US"}),
        ({"type": "hello"}, {"Accept-Language": "zh-CN,zh;q=0.9"}),
    ],
    ids=["picked-on-the-page", "accept-language"],
)
async def test_the_chats_rate_limit_is_explained_in_the_chats_language(services, hello, headers):
    """The close reason in the page's pick (`hello.language`), else Accept-Language (issue 15); `code` as ever."""
    base_url = services.start_http()
    async with connect(base_url.replace("http://", "ws://") + "/v1/chat", additional_headers=headers) as websocket:
        await websocket.send(json.dumps(hello))
        assert (await next_frame(websocket))["type"] == "session"
        for _ in range(RATE_MAX_MESSAGES + 1):
            await websocket.send(json.dumps({"type": "message", "text": "在吗？"}))
        while (received := await next_frame(websocket))["type"] != "error":
            pass
        assert received == {"type": "error", "code": "rate_limited", "detail": "消息发送过于频繁，请稍候。"}
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(websocket)
        assert closed.value.rcvd.code == 1013


async def test_too_many_new_chats_are_refused_in_the_chats_language(services):
    """`limits.chat` (the example config: 10 new sessions per client in 10 minutes), explained in Chinese to a
    Chinese browser."""
    url = services.start_http().replace("http://", "ws://") + "/v1/chat"
    # Loopback is exempt from limits; the server believes 127.0.0.1's X-Forwarded-For (a trusted proxy).
    headers = {"X-Forwarded-For": "192.0.2.50", "Accept-Language": "zh-CN"}
    for _ in range(10):
        async with connect(url, additional_headers=headers) as websocket:
            await websocket.send(json.dumps({"type": "hello"}))
            assert (await next_frame(websocket))["type"] == "session"
    async with connect(url, additional_headers=headers) as websocket:
        await websocket.send(json.dumps({"type": "hello"}))
        refused = await next_frame(websocket)
        assert refused["type"] == "error" and refused["code"] == "rate_limited"
        assert refused["detail"].startswith("新对话过多，请在 ") and refused["detail"].endswith(" 秒后重试。")
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(websocket)
        assert closed.value.rcvd.code == 1013


async def refused(url: str, headers: dict[str, str], *frames: str | bytes) -> tuple[dict, int]:
    """The error frame the chat answers `frames` with, and its close code."""
    async with connect(url, additional_headers=headers) as websocket:
        for frame in frames:
            await websocket.send(frame)
        while (received := await next_frame(websocket))["type"] != "error":
            pass
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(websocket)
        return received, closed.value.rcvd.code


async def test_a_chinese_reader_is_told_why_the_chat_closed_in_chinese(services, settings):
    """Every error frame's `detail` in the chat's language (issue 15): before the hello, Accept-Language; after
    it, the page's pick (`hello.language`) first. `code` and close codes as ever."""
    url = services.start_http().replace("http://", "ws://") + "/v1/chat"
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9"}
    hello = json.dumps({"type": "hello"})
    assert await refused(url, chinese, b"\x00\xff binary") == (
        {"type": "error", "code": "bad_frame", "detail": "帧须为 JSON 文本，不能是二进制数据。"},
        1003,
    )
    assert await refused(url, chinese, "x" * (MAX_FRAME_BYTES + 1)) == (
        {"type": "error", "code": "too_big", "detail": "每帧不能超过 16,384 字节。"},
        1009,
    )
    assert await refused(url, {"Accept-Language": "en"}, "x" * (MAX_FRAME_BYTES + 1)) == (
        {"type": "error", "code": "too_big", "detail": "frames are limited to 16,384 bytes"},
        1009,
    )
    bad_email = json.dumps({"type": "hello", "language": "zh-Hans", "email": "nope"})
    assert await refused(url, {"Accept-Language": "en"}, bad_email) == (
        {
            "type": "error",
            "code": "bad_frame",
            "detail": "email: 请输入可以收信的电子邮件地址，例如 name@example.com。",
        },
        1008,
    )
    too_long = json.dumps({"type": "message", "text": "x" * (MAX_MESSAGE_CHARS + 1)})
    assert await refused(url, chinese, hello, too_long) == (
        {"type": "error", "code": "too_long", "detail": "message.text: 请不要超过 4,000 个字符。"},
        1009,
    )
    unknown = json.dumps({"type": "hello", "token": "no-such-session"})
    assert await refused(url, chinese, unknown) == (
        {"type": "error", "code": "unknown_session", "detail": "此会话令牌未知或已过期。"},
        1008,
    )
    # Redis lost its state: the page keeps its session and comes back (close 1013), told so in Chinese.
    redis = Redis.from_url(settings.redis_url)
    try:
        await forget_restored(redis)
    finally:
        await redis.aclose()
    assert await refused(url, chinese, unknown) == (
        {"type": "error", "code": "unavailable", "detail": "聊天暂时不可用，请稍后重试。"},
        1013,
    )


async def test_chat_works_behind_two_intake_instances(chat_stack, services):
    """The session lives on instance A, the reply is pushed there, the reconnect lands on B."""
    second = services.start_http(port=free_port(), instance="intake-http-b")
    async with connect(chat_stack.replace("http://", "ws://") + "/v1/chat") as websocket:
        await websocket.send(json.dumps({"type": "hello", "name": "Ana"}))
        session = await next_frame(websocket)
        await websocket.send(json.dumps({"type": "message", "text": "Hi from A"}))
        await next_frame(websocket)
        wait_for_ticket(second, session["ticket_id"], API_TOKEN, lambda t: t["assignee"] is not None)
        reply_as_agent(services.settings, session["ticket_id"], "Hello, Ana")
        assert (await next_frame(websocket))["text"] == "Hello, Ana"
    async with connect(second.replace("http://", "ws://") + "/v1/chat") as websocket:
        await websocket.send(json.dumps({"type": "hello", "token": session["token"]}))
        assert (await next_frame(websocket))["ticket_id"] == session["ticket_id"]
        history = [await next_frame(websocket) for _ in range(2)]
        assert [frame["text"] for frame in history] == ["Hi from A", "Hello, Ana"]


async def frames_until_echo(websocket, text: str) -> list[dict]:
    """Sends `text` and returns what the session pushed before its echo (a reconnect's replay)."""
    await websocket.send(json.dumps({"type": "message", "text": text}))
    frames = []
    while (frame := await next_frame(websocket)).get("text") != text:
        frames.append(frame)
    return frames


async def test_an_internal_note_is_never_replayed_to_the_customer(chat_stack, services):
    ws_url = chat_stack.replace("http://", "ws://") + "/v1/chat"
    async with connect(ws_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "name": "Ana"}))
        session = await next_frame(websocket)
        await websocket.send(json.dumps({"type": "message", "text": "Where is my parcel?"}))
        await next_frame(websocket)
    ticket_id = session["ticket_id"]
    wait_for_ticket(chat_stack, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
    result = switchboard_cli(services.settings, "ticket", "note", ticket_id, "Customer is on the fraud watch list")
    assert result.returncode == 0, result.stderr
    wait_for_ticket(chat_stack, ticket_id, API_TOKEN, lambda t: any(m["internal"] for m in t["messages"]))

    async with connect(ws_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "token": session["token"]}))
        assert (await next_frame(websocket))["ticket_id"] == ticket_id
        replayed = await frames_until_echo(websocket, "Any news?")
    assert [frame["text"] for frame in replayed] == ["Where is my parcel?"]


async def test_writing_in_a_session_whose_ticket_was_closed_opens_a_follow_up_ticket(chat_stack, services):
    ws_url = chat_stack.replace("http://", "ws://") + "/v1/chat"
    async with connect(ws_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "name": "Ana", "email": "ana@example.com"}))
        session = await next_frame(websocket)
        closed = session["ticket_id"]
        await websocket.send(json.dumps({"type": "message", "text": "My order is late"}))
        await next_frame(websocket)
        wait_for_ticket(chat_stack, closed, API_TOKEN, lambda t: t["assignee"] is not None)
        for status in ("solved", "closed"):
            result = switchboard_cli(services.settings, "ticket", "status", closed, status)
            assert result.returncode == 0, result.stderr
        wait_for_ticket(chat_stack, closed, API_TOKEN, lambda t: t["status"] == "closed")

        # Weeks later, in the same session: a new ticket that follows up on the closed one.
        await websocket.send(json.dumps({"type": "message", "text": "It broke again"}))
        moved = await next_frame(websocket)
        assert moved == {"type": "session", "token": session["token"], "ticket_id": moved["ticket_id"]}
        follow_up = moved["ticket_id"]
        assert follow_up != closed and (await next_frame(websocket))["text"] == "It broke again"
        ticket = wait_for_ticket(chat_stack, follow_up, API_TOKEN, lambda t: t["assignee"] is not None)
        assert ticket["follow_up_of"] == closed and [m["text"] for m in ticket["messages"]] == ["It broke again"]
        # The agent's answer on the follow-up reaches the open session.
        reply_as_agent(services.settings, follow_up, "Sorry, a new one ships today.")
        assert (await next_frame(websocket))["text"] == "Sorry, a new one ships today."

    async with connect(ws_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "token": session["token"]}))
        assert (await next_frame(websocket))["ticket_id"] == follow_up


async def test_a_page_away_when_the_ticket_was_solved_is_asked_for_its_rating_when_it_comes_back(services):
    # No notifier: the pushed request is missed for sure; the session asks when it opens.
    services.start("router")
    base_url = services.start_http()
    ws_url = base_url.replace("http://", "ws://") + "/v1/chat"
    async with connect(ws_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "name": "Ana"}))
        session = await next_frame(websocket)
        await websocket.send(json.dumps({"type": "message", "text": "My order is late"}))
        await next_frame(websocket)
    ticket_id = session["ticket_id"]
    wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
    reply_as_agent(services.settings, ticket_id, "It ships today.")
    wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["public_replies"] == 1)
    result = switchboard_cli(services.settings, "ticket", "status", ticket_id, "solved")
    assert result.returncode == 0, result.stderr
    wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["status"] == "solved")

    request = {"type": "csat", "ticket_id": ticket_id, "resolution": 1, "scores": [1, 2, 3, 4, 5]}
    async with connect(ws_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "token": session["token"]}))
        frames = [await next_frame(websocket) for _ in range(4)]
        assert [frame["type"] for frame in frames] == ["session", "message", "message", "csat"]
        assert frames[-1] == request
        await websocket.send(json.dumps({"type": "csat", "resolution": 1, "score": 5}))
        assert await next_frame(websocket) == {"type": "csat_thanks", "resolution": 1}
    wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["csat"] is not None)

    # Rated: the page is not asked again.
    async with connect(ws_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "token": session["token"]}))
        assert (await next_frame(websocket))["type"] == "session"
        replayed = await frames_until_echo(websocket, "Thanks!")
    assert [frame["type"] for frame in replayed] == ["message", "message"]
