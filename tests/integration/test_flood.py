"""A flood of form posts against the running stack (issue #16): the first N are accepted, the rest get 429
with Retry-After, a person posting meanwhile from elsewhere is accepted, the router opens at most N
tickets and Slack sees at most N cards; two intake-http instances share one limit; spam is listed and
released with the CLI. Speed is measured by `switchboard bench`, not asserted here."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from shared.settings import Settings
from shared.topics import INBOUND, Topics
from tests.conftest import API_TOKEN, free_port
from tests.fakes.slack_api import FakeSlackApi
from tests.integration.test_public_defences import desk_config, form, from_address
from tests.support import ServiceProcesses, switchboard_cli, topic_size, wait_for_ticket

pytestmark = pytest.mark.integration

ACCEPTED = 25
FLOOD = 2000
PEOPLE = 5
TEAM_CHANNEL = "C0SUPPORT"


def limits(per_ip: int) -> dict:
    return {
        "trusted_proxies": ["127.0.0.1/32"],
        "exempt": [],
        "form": {"ip": {"requests": per_ip, "per": "1h"}, "contact": {"requests": 3, "per": "1h"}},
    }


async def post(client: httpx.AsyncClient, url: str, body: dict, address: str) -> httpx.Response:
    return await client.post(url, json=body, headers=from_address(address))


def is_card(call) -> bool:
    return call.args.get("channel") == TEAM_CHANNEL and not call.args.get("thread_ts")


async def test_a_flood_from_one_address_opens_at_most_the_limit_and_a_person_elsewhere_gets_through(
    services: ServiceProcesses, settings: Settings, fake_slack: FakeSlackApi, tmp_path: Path
):
    config = str(desk_config(tmp_path, limits=limits(ACCEPTED)))
    services.start("router", SWITCHBOARD_CONFIG=config)
    services.start("notifier", SWITCHBOARD_CONFIG=config)
    base_url = services.start_http(SWITCHBOARD_CONFIG=config)
    url = f"{base_url}/v1/forms/contact"
    gate = asyncio.Semaphore(64)

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=80)) as client:

        async def bot(number: int) -> httpx.Response:
            async with gate:
                return await post(client, url, form(number), "203.0.113.7")

        async def people() -> list[httpx.Response]:
            answers = []
            for number in range(PEOPLE):
                answers.append(await post(client, url, form(10_000 + number), f"198.51.100.{number + 1}"))
            return answers

        flood = asyncio.gather(*(bot(n) for n in range(FLOOD)))
        persons = await people()
        answers = await flood

    statuses = [answer.status_code for answer in answers]
    assert statuses.count(202) == ACCEPTED and statuses.count(429) == FLOOD - ACCEPTED
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)
    assert {a.json()["detail"][0]["type"] for a in answers if a.status_code == 429} == {"rate_limited"}
    assert [answer.status_code for answer in persons] == [202] * PEOPLE

    tickets = ACCEPTED + PEOPLE
    assert await topic_size(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(INBOUND)) == tickets
    cards = await fake_slack.wait_for_calls("chat.postMessage", count=tickets, timeout=120, predicate=is_card)
    assert len(cards) == tickets
    for answer in persons:
        wait_for_ticket(base_url, answer.json()["ticket_id"], API_TOKEN, lambda ticket: True)


async def test_two_intake_instances_share_one_limit(services: ServiceProcesses, tmp_path: Path):
    config = str(desk_config(tmp_path, limits=limits(6)))
    first = services.start_http(SWITCHBOARD_CONFIG=config)
    second = services.start_http(port=free_port(), instance="intake-http-2", SWITCHBOARD_CONFIG=config)
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(
            *(
                post(client, f"{base}/v1/forms/contact", form(n), "192.0.2.44")
                for n in range(10)
                for base in (first, second)
            )
        )
    assert [answer.status_code for answer in answers].count(202) == 6


def test_spam_is_listed_and_released_into_a_ticket_with_the_cli(
    services: ServiceProcesses, settings: Settings, tmp_path: Path
):
    config = str(desk_config(tmp_path, spam={"min_fill_time": "0s"}))
    services.start("router", SWITCHBOARD_CONFIG=config)
    base_url = services.start_http(SWITCHBOARD_CONFIG=config)
    bot = httpx.post(f"{base_url}/v1/forms/contact", json={**form(1), "website": "cheap pills"}, timeout=30)
    assert bot.status_code == 202
    ticket_id = bot.json()["ticket_id"]

    listed = switchboard_cli(settings, "quarantine", "list", "--json", "--reason", "spam_honeypot")
    assert listed.returncode == 0, listed.stderr
    [kept] = json.loads(listed.stdout)
    assert kept["ticket_id"] == ticket_id and kept["kind"] == "spam"
    assert (
        httpx.get(f"{base_url}/v1/tickets/{ticket_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code
        == 404
    )

    released = switchboard_cli(settings, "quarantine", "release", kept["message_id"], "--actor", "ana")
    assert released.returncode == 0, released.stderr
    assert released.stdout.strip() == f"released {kept['message_id']} into {ticket_id}"
    # The router opened the very ticket the bot was told about.
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda ticket: True)
    assert ticket["subject"] == "Cannot log in"
    again = switchboard_cli(settings, "quarantine", "release", kept["message_id"])
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"{kept['message_id']} was released before (by ana) into {ticket_id}"

    # Replay rebuilds the quarantine with its release, and the reserved ticket number is never minted again.
    services.stop_all()
    redis.Redis.from_url(settings.redis_url).flushdb()
    replayed = switchboard_cli(settings, "replay")
    assert replayed.returncode == 0, replayed.stderr
    [rebuilt] = json.loads(switchboard_cli(settings, "quarantine", "list", "--json").stdout)
    assert rebuilt["released"]["ticket_id"] == ticket_id and rebuilt["released"]["actor"] == "ana"
    again = switchboard_cli(settings, "quarantine", "release", kept["message_id"])
    assert "was released before" in again.stdout


async def test_new_chat_sessions_are_limited_per_client_but_a_session_resumes(services: ServiceProcesses, tmp_path):
    chat_limits = {"trusted_proxies": ["127.0.0.1/32"], "exempt": [], "chat": {"ip": {"requests": 2, "per": "1h"}}}
    base_url = services.start_http(SWITCHBOARD_CONFIG=str(desk_config(tmp_path, limits=chat_limits)))
    ws_url = base_url.replace("http://", "ws://") + "/v1/chat"
    headers = from_address("192.0.2.9")

    async def hello(frame: dict) -> tuple[dict, int | None]:
        async with connect(ws_url, additional_headers=headers) as websocket:
            await websocket.send(json.dumps(frame))
            answer = json.loads(await asyncio.wait_for(websocket.recv(), 30))
            if answer["type"] == "error":
                with contextlib.suppress(ConnectionClosed):
                    await asyncio.wait_for(websocket.recv(), 30)
            return answer, websocket.close_code

    first, _ = await hello({"type": "hello", "name": "Ana"})
    second, _ = await hello({"type": "hello"})
    assert first["type"] == second["type"] == "session"
    refused, close_code = await hello({"type": "hello", "email": "ana@example.com"})
    assert refused["type"] == "error" and refused["code"] == "rate_limited" and "try again in" in refused["detail"]
    assert close_code == 1013
    resumed, _ = await hello({"type": "hello", "token": first["token"]})
    assert resumed == {"type": "session", "token": first["token"], "ticket_id": first["ticket_id"]}
