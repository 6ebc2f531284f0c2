"""Driving a whole stack for the lost-Redis tests (test_redis_loss.py): channels, the log, what Redis
and the read API hold, and a redis-server that can be killed."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import smtplib
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from services.intake.chat import CLOSE_TRY_AGAIN_LATER
from shared.agents import Availability
from shared.events import AgentAvailabilityChanged
from shared.redis_client import connect_redis
from shared.settings import EXAMPLE_CONFIG, Settings
from shared.state import RESTORED_KEY
from shared.topics import AGENTS, COMMANDS, CONTACTS, INBOUND, TICKETS, Topics
from tests.conftest import API_TOKEN, free_port
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.smtp_sink import SmtpSink
from tests.fakes.telegram_api import FakeTelegramApi
from tests.integration.test_email_stack import SUPPORT, mail, ticket_of, wait_for_smtp
from tests.integration.test_slack_stack import SHARED_CHANNEL, customer_message, post_signed
from tests.integration.test_telegram_stack import post_update, update
from tests.integration.test_web_chat import next_frame
from tests.support import (
    ServiceProcesses,
    decoded,
    read_topic,
    start_redis,
    switchboard_cli,
    topic_size,
    wait_for_ticket,
    wait_until_consumed,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# What replay does not rebuild, by design (README, "Operations"): decisions and deliveries in
# progress, caches (Slack profiles, what each card shows, the config the SLA clocks last followed),
# the chat's rate-limit windows and the public endpoints' rate-limit counters.
NOT_REBUILT = (
    "sb:router:outcome:*",
    "sb:notifier:intent:*",
    "sb:notifier:shown:*",
    "sb:slack:user:*",
    "sb:chat:session:*:rate:*",
    "sb:limits:*",
    "sb:notifier:ack-reserved:*",
    "sb:sla:reconciled_with",
)
CONSUMERS = (
    ("switchboard-router", INBOUND),
    ("switchboard-router", COMMANDS),
    ("switchboard-sla", TICKETS),
    ("switchboard-notifier", TICKETS),
)


# --- the stack ---------------------------------------------------------------------------------


@dataclass
class Stack:
    services: ServiceProcesses
    base_url: str
    smtp_port: int
    router_ops: str
    config: Path = EXAMPLE_CONFIG

    @property
    def settings(self) -> Settings:
        """The stack's settings, as the command line uses them (with the stack's config)."""
        return self.services.settings.model_copy(update={"config": self.config})

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/v1/chat"

    def send_mail(self, message) -> None:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=60) as client:
            client.send_message(message, to_addrs=[SUPPORT])

    def post_form(self, email: str, subject: str, message: str, form: str = "contact") -> httpx.Response:
        body = {"name": email.split("@")[0].title(), "email": email, "subject": subject, "message": message}
        return httpx.post(f"{self.base_url}/v1/forms/{form}", json=body, timeout=60)

    def form_ticket(self, email: str, subject: str, message: str, form: str = "contact") -> str:
        response = self.post_form(email, subject, message, form)
        assert response.status_code == 202, response.text
        return response.json()["ticket_id"]

    def ticket(self, ticket_id: str, ready=lambda ticket: ticket["assignee"] is not None) -> dict:
        return wait_for_ticket(self.base_url, ticket_id, API_TOKEN, ready)


def start_stack(services: ServiceProcesses, config: Path = EXAMPLE_CONFIG) -> Stack:
    smtp_port, router_ops = free_port(), free_port()
    common = {"SWITCHBOARD_CONFIG": str(config)}
    services.start("router", SWITCHBOARD_OPS_PORT=str(router_ops), **common)
    for name in ("sla", "notifier"):
        services.start(name, SWITCHBOARD_OPS_PORT=str(free_port()), **common)
    services.start("intake-smtp", SWITCHBOARD_SMTP_PORT=str(smtp_port), SWITCHBOARD_OPS_PORT=str(free_port()), **common)
    base_url = services.start_http(**common)
    wait_for_smtp(smtp_port, services)
    return Stack(services, base_url, smtp_port, f"http://127.0.0.1:{router_ops}", config)


def quick_sla_config(directory: Path, seconds: int) -> Path:
    """The example config plus an `urgent` form and team whose SLA runs out within the test."""
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["forms"].append({"id": "urgent", "team": "urgent"})
    config["teams"].append(
        {
            "id": "urgent",
            "name": "Urgent",
            "slack_channel": "C0URGENT",
            "lead": "lena",
            "members": ["ben"],
            "sla_policy": "quick",
        }
    )
    config["sla_policies"].append({"id": "quick", "first_response": f"{seconds}s", "warn_at": [0.1]})
    path = directory / "quick-sla.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


# --- what Redis and the read API hold -----------------------------------------------------------

_READ = {
    "string": lambda store, key: store.get(key),
    "hash": lambda store, key: store.hgetall(key),
    "list": lambda store, key: store.lrange(key, 0, -1),
    "set": lambda store, key: store.smembers(key),
    "zset": lambda store, key: store.zrange(key, 0, -1, withscores=True),
}


def projections(redis_url: str) -> dict[str, tuple[str, Any]]:
    """Every key replay rebuilds, with its type and value (TTLs aside). The state marker is left out:
    it says when and how the state was made ("new installation …", "replay …")."""
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    dump = {}
    for key in store.scan_iter(count=1000):
        if key == RESTORED_KEY or any(fnmatch(key, pattern) for pattern in NOT_REBUILT):
            continue
        kind = store.type(key)
        dump[key] = (kind, _READ[kind](store, key))
    return dump


def read_api_paths(redis_url: str) -> list[str]:
    """The read API's path of every ticket and contact Redis holds."""
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    tickets = [key.split(":")[2] for key in store.scan_iter("sb:ticket:*") if key.count(":") == 2]
    contacts = [key.split(":")[2] for key in store.scan_iter("sb:contact:*") if key.count(":") == 2]
    return sorted([f"/v1/tickets/{ticket}" for ticket in tickets] + [f"/v1/contacts/{c}" for c in contacts])


# What `sla.clocks` computes from the moment it is read (services/sla/show.py): an unfinished clock's time
# used, remaining and paused move between two reads of the same state.
_AS_OF_NOW = ("used", "remaining", "paused")


def read_api(base_url: str, paths: list[str]) -> dict[str, Any]:
    """Each path's body as JSON, less what depends on when it was read (`_AS_OF_NOW` of the SLA clocks)."""
    bodies = {}
    for path in paths:
        response = httpx.get(f"{base_url}{path}", headers=AUTH, timeout=10)
        assert response.status_code == 200, f"{path}: {response.status_code}"
        bodies[path] = without_moving_times(response.json())
    return bodies


def without_moving_times(body: dict[str, Any]) -> dict[str, Any]:
    """A read API body less what depends on when it was read (`_AS_OF_NOW` of the SLA clocks), in place."""
    for clock in (body.get("sla") or {}).get("clocks") or []:
        for name in _AS_OF_NOW:
            clock.pop(name, None)
    return body


def assert_same_projections(before: dict[str, tuple[str, Any]], after: dict[str, tuple[str, Any]]) -> None:
    differences = {
        key: _difference(before.get(key), after.get(key))
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }
    assert differences == {}, "replay did not rebuild the live state:\n" + "\n".join(
        f"{key}: {difference}" for key, difference in differences.items()
    )


def _difference(live: tuple[str, Any] | None, replayed: tuple[str, Any] | None) -> Any:
    if live and replayed and live[0] == replayed[0] and live[0] in ("set", "hash"):
        old, new = live[1], replayed[1]
        if live[0] == "hash":
            old, new = set(old.items()), set(new.items())
        return {"only live": sorted(old - new), "only replayed": sorted(new - old)}
    return {"live": live, "replayed": replayed}


# --- the log ------------------------------------------------------------------------------------


async def settle(settings: Settings) -> None:
    """Waits until every consumer group has handled everything on its topics, and nothing new came."""
    topics = Topics(settings.topic_prefix)
    watched = [topics.name(spec) for spec in (INBOUND, COMMANDS, TICKETS, CONTACTS)]
    while True:
        sizes = [await topic_size(settings.kafka_bootstrap, topic) for topic in watched]
        for group, spec in CONSUMERS:
            await wait_until_consumed(settings.kafka_bootstrap, topics.group(group), topics.name(spec), timeout=60)
        if sizes == [await topic_size(settings.kafka_bootstrap, topic) for topic in watched]:
            return


async def events_on(settings: Settings, spec) -> list[dict]:
    topic = Topics(settings.topic_prefix).name(spec)
    size = await topic_size(settings.kafka_bootstrap, topic)
    return decoded(await read_topic(settings.kafka_bootstrap, topic, at_least=size)) if size else []


async def wait_for_event(settings: Settings, predicate, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := [event for event in await events_on(settings, TICKETS) if predicate(event)]:
            return found[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no such ticket event in {timeout}s")


async def availability_change(settings: Settings, agent_id: str, available: bool) -> AgentAvailabilityChanged:
    """An agent goes away or comes back, published and applied as `/sb away` and `/sb back` do."""
    change = AgentAvailabilityChanged(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), agent_id=agent_id, available=available
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        topic = Topics(settings.topic_prefix).name(AGENTS)
        await producer.send_and_wait(topic, change.model_dump_json().encode(), key=agent_id.encode())
    finally:
        await producer.stop()
    store = connect_redis(settings.redis_url)
    try:
        await Availability(store).apply([change])
    finally:
        await store.aclose()
    return change


def ticket_number(ticket_id: str) -> int:
    return int(ticket_id.split("-")[1])


# --- the channels -------------------------------------------------------------------------------


def email_ticket(stack: Stack, smtp_sink: SmtpSink, sender: str, subject: str) -> tuple[str, Any, Any]:
    """A mail opening a ticket; returns the ticket ID, the mail, and our acknowledgement."""
    first = mail(subject, f"{subject}, please help.", sender=sender)
    stack.send_mail(first)
    [ack] = smtp_sink.wait_for(lambda m: m.recipients == [sender] and subject in m.message["Subject"])
    return ticket_of(ack.message), first, ack.message


async def chat_ticket(stack: Stack, name: str, email: str, text: str) -> tuple[str, str]:
    """A web-chat session with one message; returns its ticket and token."""
    async with connect(stack.ws_url) as websocket:
        await websocket.send(json.dumps({"type": "hello", "name": name, "email": email}))
        session = await next_frame(websocket)
        await websocket.send(json.dumps({"type": "message", "text": text}))
        assert (await next_frame(websocket))["text"] == text
    return session["ticket_id"], session["token"]


async def chat_again(stack: Stack, token: str, text: str) -> tuple[dict, list[dict]]:
    """Resumes a session as the page does (coming back while told `unavailable`) and writes in it;
    returns the session frame and the history replayed."""
    for _ in range(20):
        try:
            async with connect(stack.ws_url) as websocket:
                await websocket.send(json.dumps({"type": "hello", "token": token}))
                session = frame = await next_frame(websocket)
                if session["type"] == "session":
                    await websocket.send(json.dumps({"type": "message", "text": text}))
                    history = []
                    while (frame := await next_frame(websocket))["type"] == "message" and frame["text"] != text:
                        history.append(frame)
                    if frame["type"] == "message":
                        return session, history
            assert frame["code"] == "unavailable", frame
        except ConnectionClosedError as closed:
            # Closed with 1013 (try again later) before a frame said why: the page comes back too.
            assert closed.rcvd is not None and closed.rcvd.code == CLOSE_TRY_AGAIN_LATER, closed
        await asyncio.sleep(0.5)
    raise AssertionError("the chat stayed unavailable")


def slack_ticket(stack: Stack, fake_slack: FakeSlackApi, event_id: str, ts: str, text: str) -> str:
    assert post_signed(stack.base_url, customer_message(event_id, ts, text)).status_code == 200
    [ack] = fake_slack.wait_for_calls_sync(
        "chat.postMessage",
        timeout=30,
        predicate=lambda call: call.args["channel"] == SHARED_CHANNEL and call.args.get("thread_ts") == ts,
    )
    return re.search(r"SB-\d+", ack.args["text"]).group(0)


def slack_thread_reply(event_id: str, thread_ts: str, ts: str, text: str) -> dict:
    payload = customer_message(event_id, ts, text)
    return {**payload, "event": {**payload["event"], "thread_ts": thread_ts}}


def telegram_ticket(stack: Stack, fake_telegram: FakeTelegramApi, text: str) -> str:
    assert post_update(stack.base_url, update(1001, 7, text)).status_code == 200
    [ack] = fake_telegram.wait_for_calls_sync("sendMessage", timeout=30)
    return re.search(r"SB-\d+", ack.args["text"]).group(0)


def slack_posts(fake_slack: FakeSlackApi) -> list[tuple[str, str | None, str]]:
    return [
        (call.args["channel"], call.args.get("thread_ts"), call.args.get("text", ""))
        for call in fake_slack.calls_to("chat.postMessage")
    ]


def replay(settings: Settings) -> None:
    result = switchboard_cli(settings, "replay")
    assert result.returncode == 0, result.stderr


# --- a Redis of the test's own -------------------------------------------------------------------


class OwnRedis:
    """A redis-server of this test's own, without persistence: killed, it comes back empty."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = start_redis(self.port, self.directory, appendonly=False)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def readiness(url: str) -> tuple[int, dict]:
    response = httpx.get(f"{url}/readyz", timeout=30)
    return response.status_code, response.json()
