"""Web chat (`GET /v1/chat`, WebSocket): a session is one ticket; agent replies are pushed live.

Frames are JSON text (SPEC §2). Sessions live in Redis, so a reconnect to any intake-http
instance resumes the ticket, and agent replies reach the session through Redis pub/sub wherever
it is connected. A customer writing in a session whose ticket was closed meanwhile (sessions outlive
tickets) moves the session on, as every channel does: to the ticket it was merged into, else to a new
ticket following up on it; the session is told the new ticket ID with a `session` frame.

CSAT: after a resolution the notifier pushes a `csat` frame (ticket_id, resolution, scores) on the
same pub/sub channel, and a session opened while that request is unanswered gets it again; the
customer's `{"type": "csat", "resolution": n, "score": s}` rates the session's own ticket (a `RateTicket`
command) and is answered `{"type": "csat_thanks", "resolution": n}`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aiokafka.errors import KafkaError
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, EmailStr, Field, TypeAdapter, ValidationError
from redis.exceptions import RedisError

from services.intake.core import Intake
from services.intake.csat import publish_rating
from services.intake.field_messages import message_for
from services.intake.guard import PublicGuard
from services.intake.limits import contact_identities
from services.intake.ratings import ChatRating, Rating, chat_request, unanswered_request
from shared import i18n
from shared.conversations import chat_channel, chat_session, chat_session_key
from shared.events import InboundMessage, ReplyRoute, Sender
from shared.read_model import ReadModel, ticket_key
from shared.state import RESTORED_KEY

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000
MAX_FRAME_BYTES = 16 * 1024
# A person types a handful of messages a minute; a burst of 10 in 10 s is already generous.
RATE_WINDOW_SECONDS = 10
RATE_MAX_MESSAGES = 10
SESSION_TTL_SECONDS = 30 * 24 * 3600
HELLO_TIMEOUT_SECONDS = 30

# WebSocket close codes (RFC 6455 §7.4.1).
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013


class Hello(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["hello"]
    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    token: str | None = Field(default=None, max_length=200)
    last_seen: str | None = Field(default=None, max_length=100)
    # The language the customer picked on the page and their browser's IANA time zone (issue 15).
    language: str | None = Field(default=None, max_length=64)
    timezone: str | None = Field(default=None, max_length=64)


class ChatText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["message"]
    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


# What a customer sends once the session is open.
CustomerFrame = TypeAdapter(Annotated[ChatText | ChatRating, Field(discriminator="type")])
HelloFrame = TypeAdapter(Hello)


class ChatViolation(Exception):
    def __init__(self, code: str, detail: str, close_code: int = CLOSE_POLICY_VIOLATION):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.close_code = close_code


def _unavailable(texts: i18n.Texts) -> ChatViolation:
    return ChatViolation("unavailable", texts("refusal.chat_unavailable"), CLOSE_TRY_AGAIN_LATER)


def _session_key(token: str) -> str:
    # Only a hash of the token is stored: a Redis dump does not hand out sessions.
    return chat_session_key(chat_session(token))


def shown_to_customer(message: dict[str, Any]) -> bool:
    """Whether a read-model message belongs in the customer's view of the ticket: what they and the agents
    wrote to each other, not agents' internal notes, messages kept for review, edits or machine mail."""
    return (
        message["kind"] == "message"
        and message["author"] in ("customer", "agent")
        and not message.get("internal")
        and not message["review"]
    )


def message_frame(message: dict[str, Any]) -> dict[str, Any]:
    """A read-model message as the chat protocol shows it."""
    return {
        "type": "message",
        "id": message["id"],
        "from": "agent" if message["author"] == "agent" else "customer",
        "text": message["text"],
        "at": message["at"],
    }


def language_fields(hello: Hello, accept_language: str | None) -> dict[str, str]:
    """What a new session keeps of the customer's language: the page's pick (a catalogue's locale), the
    browser's best Accept-Language tag (the channel's hint) and its time zone; those known."""
    fields = {
        "language": i18n.negotiate(hello.language),
        "language_hint": i18n.hint(accept_language),
        "timezone": hello.timezone if i18n.zone(hello.timezone) else None,
    }
    return {key: value for key, value in fields.items() if value}


def picked_language(raw: str) -> str | None:
    """The `language` of a hello frame as sent, valid or not, so that a refused hello (an email that is no
    address) is explained in the page's pick too; at most 64 characters, as `Hello` takes."""
    try:
        frame = json.loads(raw)
    except ValueError:
        return None
    picked = frame.get("language") if isinstance(frame, dict) else None
    return picked[:64] if isinstance(picked, str) else None


def frame_errors(error: ValidationError, texts: i18n.Texts) -> str:
    """Why a frame was refused, in `texts`' language, one reason per pydantic error, "; "-separated: "field:
    message" (the form's field messages, services.intake.field_messages), or that a frame is a JSON object of
    a known `type` (an error of no field: no JSON, no object, an unknown `type`). Fields keep the protocol's
    names."""

    def reason(detail: Any) -> str:
        where = ".".join(map(str, detail["loc"]))
        if not where:
            return texts("refusal.chat_frame")
        if detail["type"] == "extra_forbidden":
            return f"{where}: {texts('refusal.chat_unknown_field')}"
        return f"{where}: {message_for(detail, texts)}"

    return "; ".join(reason(detail) for detail in error.errors())


def chat_routes(intake: Intake, guard: PublicGuard | None = None) -> APIRouter:
    """The chat's routes; with `guard`, new sessions are rate limited (`limits.chat`)."""
    router = APIRouter()
    read_model = ReadModel(intake.redis)

    async def within_session_limits(websocket: WebSocket, hello: Hello, texts: i18n.Texts) -> None:
        """Raises ChatViolation `rate_limited` (close 1013, try again later) past `limits.chat`."""
        if guard is None:
            return
        peer = websocket.client.host if websocket.client else None
        client = guard.client(peer, websocket.headers)
        if limited := await guard.limit("chat", client, identities=contact_identities(hello.email, None)):
            detail = texts("refusal.chat_sessions", seconds=limited.retry_after)
            raise ChatViolation("rate_limited", detail, CLOSE_TRY_AGAIN_LATER)

    async def open_session(hello: Hello, accept_language: str | None, texts: i18n.Texts) -> tuple[str, dict[str, Any]]:
        if hello.token:
            async with intake.redis.pipeline(transaction=True) as pipe:
                pipe.exists(RESTORED_KEY)
                pipe.get(_session_key(hello.token))
                restored, stored = await pipe.execute()
            if not restored:
                # Redis lost its state: the session comes back with `switchboard replay`, so the page
                # must keep its token and retry, not be told the chat has ended.
                raise _unavailable(texts)
            if stored is None:
                raise ChatViolation("unknown_session", texts("refusal.chat_unknown_session"))
            return hello.token, json.loads(stored)
        token = secrets.token_urlsafe(24)
        session = {
            "ticket_id": await intake.ticket_ids.mint(),
            "name": hello.name,
            "email": hello.email,
            **language_fields(hello, accept_language),
        }
        await intake.redis.set(_session_key(token), json.dumps(session), ex=SESSION_TTL_SECONDS)
        return token, session

    async def within_rate_limit(token: str) -> bool:
        window = f"{_session_key(token)}:rate:{int(time.time() // RATE_WINDOW_SECONDS)}"
        async with intake.redis.pipeline(transaction=True) as pipe:
            pipe.incr(window)
            pipe.expire(window, RATE_WINDOW_SECONDS * 2)
            count, _ = await pipe.execute()
        return count <= RATE_MAX_MESSAGES

    async def carry_on(token: str, session: dict[str, Any]) -> str | None:
        """Moves the session off a closed ticket before the customer writes on it, as every channel does
        (`Intake.resolve_ticket`): to the ticket it was merged into, else to a new ticket that follows up
        on it. Returns the closed ticket followed up on, if any; `session` holds the ticket from now on."""
        ticket_id = session["ticket_id"]
        if await intake.redis.hget(ticket_key(ticket_id), "status") != "closed":
            return None
        # Keyed by session and closed ticket: two tabs of one session writing at once get one follow-up.
        ticket_id, follow_up_of = await intake.ticket_ids.resolve(
            f"{chat_session(token)}:after:{ticket_id}", found=ticket_id, lookup=(), remember=()
        )
        session["ticket_id"] = ticket_id
        await intake.redis.set(_session_key(token), json.dumps(session), keepttl=True)
        return follow_up_of

    async def publish(token: str, session: dict[str, Any], text: str, follow_up_of: str | None) -> dict[str, Any]:
        channel_key = f"chat:{hashlib.sha256(token.encode()).hexdigest()[:16]}:{uuid.uuid4()}"
        message_id = intake.message_id(channel_key)
        ticket_id = session["ticket_id"]
        now = datetime.now(UTC)
        await intake.publish(
            InboundMessage.received(
                message_id=message_id,
                ticket_id=ticket_id,
                channel="chat",
                channel_message_id=channel_key,
                source="web-chat",
                sender=Sender(name=session.get("name"), email=session.get("email")),
                subject=None,
                text=text,
                reply_route=ReplyRoute(channel="chat", address=ticket_id),
                received_at=now,
                # The session (its token's hash) leads to the ticket: replay restores it from here.
                conversations=[chat_session(token)],
                follow_up_of=follow_up_of,
                customer_language=session.get("language"),
                customer_timezone=session.get("timezone"),
                language_hint=session.get("language_hint"),
            )
        )
        return {"type": "message", "id": str(message_id), "from": "customer", "text": text, "at": now.isoformat()}

    @router.websocket("/v1/chat")
    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        sent_ids: set[str] = set()
        accept_language = websocket.headers.get("accept-language")
        # Until the hello names the page's pick, refusals go by the browser's languages.
        desk_locale = intake.config.desk_locale
        texts = i18n.reader_texts(picked=None, accept_language=accept_language, desk_locale=desk_locale)

        async def send(frame: dict[str, Any]) -> None:
            if frame.get("type") == "message":
                if frame["id"] in sent_ids:
                    return
                sent_ids.add(frame["id"])
            await websocket.send_json(frame)

        async def receive(frames: TypeAdapter[Any], *, hello: bool = False) -> Any:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            raw = message.get("text")
            if raw is None:
                raise ChatViolation("bad_frame", texts("refusal.chat_binary"), CLOSE_UNSUPPORTED_DATA)
            if len(raw.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
                raise ChatViolation("too_big", texts("refusal.chat_too_big", limit=MAX_FRAME_BYTES), CLOSE_TOO_BIG)
            try:
                return frames.validate_json(raw)
            except ValidationError as error:
                code = "too_long" if any(e["type"] == "string_too_long" for e in error.errors()) else "bad_frame"
                close_code = CLOSE_TOO_BIG if code == "too_long" else CLOSE_POLICY_VIOLATION
                reader = (
                    i18n.reader_texts(
                        picked=picked_language(raw), accept_language=accept_language, desk_locale=desk_locale
                    )
                    if hello
                    else texts
                )
                raise ChatViolation(code, frame_errors(error, reader), close_code) from None

        async def refuse(violation: ChatViolation) -> None:
            logger.info("chat closed", extra={"code": violation.code})
            await websocket.send_json({"type": "error", "code": violation.code, "detail": violation.detail})
            await websocket.close(code=violation.close_code)

        async def forward_agent_replies(ticket_id: str, subscribed: asyncio.Event) -> None:
            async with intake.redis.pubsub() as pubsub:
                await pubsub.subscribe(chat_channel(ticket_id))
                subscribed.set()
                async for item in pubsub.listen():
                    if item["type"] == "message":
                        await send(json.loads(item["data"]))

        try:
            hello = await asyncio.wait_for(receive(HelloFrame, hello=True), HELLO_TIMEOUT_SECONDS)
            texts = i18n.reader_texts(picked=hello.language, accept_language=accept_language, desk_locale=desk_locale)
            if not hello.token:
                await within_session_limits(websocket, hello, texts)
            token, session = await open_session(hello, accept_language, texts)
            ticket_id = session["ticket_id"]
            await send({"type": "session", "token": token, "ticket_id": ticket_id})
            async with asyncio.TaskGroup() as tasks:

                async def follow(ticket_id: str) -> asyncio.Task[None]:
                    """Pushes the ticket's agent replies from now on (the subscription is in place on return)."""
                    subscribed = asyncio.Event()
                    forwarder = tasks.create_task(forward_agent_replies(ticket_id, subscribed))
                    await subscribed.wait()
                    return forwarder

                # Subscribe before replaying, so nothing sent in between is missed.
                forwarder = await follow(ticket_id)
                ticket = await read_model.ticket(ticket_id)
                history = [m for m in (ticket or {}).get("messages", []) if shown_to_customer(m)]
                ids = [m["id"] for m in history]
                start = ids.index(hello.last_seen) + 1 if hello.last_seen in ids else 0
                for message in history[start:]:
                    await send(message_frame(message))
                sent_ids.update(ids[:start])
                # The notifier's request is pushed once: a page that was away is asked again here.
                if (resolution := unanswered_request(await read_model.ticket_fields(ticket_id))) is not None:
                    await send(chat_request(ticket_id, resolution))
                try:
                    while True:
                        frame = await receive(CustomerFrame)
                        if not await within_rate_limit(token):
                            raise ChatViolation("rate_limited", texts("refusal.chat_messages"), CLOSE_TRY_AGAIN_LATER)
                        if isinstance(frame, ChatRating):
                            # The session is the proof: it rates its own ticket and no other.
                            await publish_rating(intake, Rating(ticket_id, frame.resolution, frame.score))
                            await send({"type": "csat_thanks", "resolution": frame.resolution})
                        else:
                            follow_up_of = await carry_on(token, session)
                            if session["ticket_id"] != ticket_id:
                                forwarder.cancel()
                                ticket_id = session["ticket_id"]
                                forwarder = await follow(ticket_id)
                                await send({"type": "session", "token": token, "ticket_id": ticket_id})
                            await send(await publish(token, session, frame.text, follow_up_of))
                finally:
                    forwarder.cancel()
        except* WebSocketDisconnect:
            pass
        except* ChatViolation as group:
            await refuse(group.exceptions[0])
        except* KafkaError as group:
            # The rating or message was not taken: the page reconnects and the customer sends it again.
            logger.warning("chat input not published", extra={"error": repr(group.exceptions[0])})
            await refuse(_unavailable(texts))
        except* RedisError as group:
            # Redis is down or lost its state (HTTP answers 503, StateNotRestored included): the page
            # keeps its session and comes back.
            logger.warning("chat unavailable", extra={"error": repr(group.exceptions[0])})
            await refuse(_unavailable(texts))
        except* TimeoutError:
            await websocket.send_json({"type": "error", "code": "no_hello", "detail": texts("refusal.chat_no_hello")})
            await websocket.close(code=CLOSE_POLICY_VIOLATION)

    return router
