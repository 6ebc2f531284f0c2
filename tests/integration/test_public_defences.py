"""The public endpoints' defences in intake-http, in-process on the real broker and Redis (issue #16):
rate limits per client, network and contact with 429 + Retry-After, X-Forwarded-For believed only from a
trusted proxy, the honeypot, the signed fill time and the captcha sending spam to the quarantine, and its
release into a ticket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from services.intake.http import create_app
from shared.events import InboundMessage
from shared.settings import EXAMPLE_CONFIG, Settings
from shared.topics import INBOUND, QUARANTINE, Topics
from tests.conftest import API_TOKEN
from tests.fakes.captcha_api import PASSING_TOKEN, FakeSiteverify
from tests.support import eventually, in_process_client, read_topic, topic_size

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CAPTCHA_SECRET = "0x0000000000000000000000000000000AA"


def form(number: int = 0, **changes: str) -> dict[str, str]:
    return {
        "name": "Ana",
        "email": f"ana{number}@example.com",
        "subject": "Cannot log in",
        "message": "It says my password is wrong.",
        **changes,
    }


def from_address(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def desk_config(tmp_path: Path, **sections: Any) -> Path:
    """The example config with `sections` replaced, written for this test."""
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config.update(sections)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


LIMITS = {
    # The test client is 127.0.0.1: a trusted proxy, so each test names its client in X-Forwarded-For.
    "trusted_proxies": ["127.0.0.1/32"],
    "exempt": [],
    "form": {
        "ip": {"requests": 4, "per": "1h"},
        "network": {"requests": 6, "per": "1h"},
        "contact": {"requests": 2, "per": "1h"},
    },
    "csat": {"ip": {"requests": 2, "per": "1h"}},
    "kb": {"ip": {"requests": 2, "per": "1h"}},
}


@pytest.fixture
def fake_siteverify() -> Iterator[FakeSiteverify]:
    with FakeSiteverify(CAPTCHA_SECRET) as fake:
        yield fake


async def client_for(settings: Settings, tmp_path: Path, **sections: Any) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(update={"config": desk_config(tmp_path, **sections)})
    async with in_process_client(create_app(configured)) as client:
        yield client


@pytest.fixture
async def limited(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(settings, tmp_path, limits=LIMITS):
        yield client


def metric(text: str, endpoint: str, outcome: str) -> float:
    line = f'switchboard_intake_guarded_total{{endpoint="{endpoint}",outcome="{outcome}"}} '
    return float(next((row.removeprefix(line) for row in text.splitlines() if row.startswith(line)), "0"))


async def test_a_client_past_its_limit_gets_429_with_retry_after_and_others_are_not_held_up(limited, settings):
    answers = [
        await limited.post("/v1/forms/contact", json=form(n), headers=from_address("203.0.113.7")) for n in range(6)
    ]
    assert [answer.status_code for answer in answers] == [202] * 4 + [429] * 2
    refused = answers[-1]
    # A bucket of 4 an hour refills one every 15 minutes.
    assert 800 <= int(refused.headers["Retry-After"]) <= 900
    [detail] = refused.json()["detail"]
    assert detail["type"] == "rate_limited" and detail["field"] == "(request)"
    assert "try again in" in detail["message"]

    # Another client of the same /24 still gets through, up to the network's limit (6).
    assert (
        await limited.post("/v1/forms/contact", json=form(7), headers=from_address("203.0.113.8"))
    ).status_code == 202
    assert (
        await limited.post("/v1/forms/contact", json=form(8), headers=from_address("203.0.113.9"))
    ).status_code == 202
    assert (
        await limited.post("/v1/forms/contact", json=form(9), headers=from_address("203.0.113.10"))
    ).status_code == 429
    # Another network is untouched.
    assert (
        await limited.post("/v1/forms/contact", json=form(10), headers=from_address("198.51.100.1"))
    ).status_code == 202

    assert await topic_size(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(INBOUND)) == 7
    metrics = (await limited.get("/metrics")).text
    assert metric(metrics, "form", "limited") == 3.0
    assert 'switchboard_intake_forms_total{outcome="limited"} 3.0' in metrics


async def test_a_contact_is_limited_whichever_address_it_writes_from(limited):
    statuses = [
        (await limited.post("/v1/forms/contact", json=form(1), headers=from_address(f"198.51.{n}.1"))).status_code
        for n in range(3)
    ]
    assert statuses == [202, 202, 429]
    # The same address spelt otherwise is the same contact.
    shouted = form(1, email="ANA1@Example.com")
    assert (await limited.post("/v1/forms/contact", json=shouted, headers=from_address("192.0.2.1"))).status_code == 429


async def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(settings, tmp_path):
    untrusted = {**LIMITS, "trusted_proxies": ["10.0.0.0/8"]}
    async for client in client_for(settings, tmp_path, limits=untrusted):
        # Each post claims another client, but the peer (127.0.0.1) is no trusted proxy: one client.
        statuses = [
            (await client.post("/v1/forms/contact", json=form(n), headers=from_address(f"198.51.100.{n}"))).status_code
            for n in range(5)
        ]
        assert statuses == [202] * 4 + [429]


async def test_concurrent_posts_take_exactly_the_limit(limited):
    async def post(number: int) -> int:
        answer = await limited.post("/v1/forms/contact", json=form(number), headers=from_address("192.0.2.77"))
        return answer.status_code

    statuses = await asyncio.gather(*(post(n) for n in range(40)))
    assert statuses.count(202) == 4 and statuses.count(429) == 36


async def test_the_rating_page_is_limited_per_client(limited):
    for _ in range(2):
        # A link that is no token: 404, but the post counted.
        assert (
            await limited.post("/v1/csat/forged", data={"score": "5"}, headers=from_address("192.0.2.5"))
        ).status_code == 404
    answer = await limited.post("/v1/csat/forged", data={"score": "5"}, headers=from_address("192.0.2.5"))
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) >= 1
    assert "try again" in answer.text
    as_json = await limited.post("/v1/csat/forged", json={"score": 5}, headers=from_address("192.0.2.5"))
    assert as_json.status_code == 429 and as_json.json()["detail"][0]["type"] == "rate_limited"


CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}


async def test_a_chinese_reader_is_refused_in_chinese(limited):
    """The form's 429 in the form's `language`, else Accept-Language (issue 15); its shape and `type` as ever."""

    async def post(number: int, fields: dict[str, str], headers: dict[str, str]) -> httpx.Response:
        # Each post from another network: only the contact's limit (2 an hour) is met.
        return await limited.post(
            "/v1/forms/contact", json=fields, headers={**from_address(f"198.18.{number}.1"), **headers}
        )

    assert [(await post(n, form(40), CHINESE)).status_code for n in range(2)] == [202, 202]
    refused = await post(2, form(40), CHINESE)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    [detail] = refused.json()["detail"]
    assert set(detail) == {"field", "message", "type"}
    assert detail["field"] == "(request)" and detail["type"] == "rate_limited"
    assert detail["message"].startswith("请求过于频繁") and detail["message"].endswith("秒后重试。")
    # What the customer picked on the page wins over the browser's languages.
    english = (await post(3, form(40, language="en"), CHINESE)).json()["detail"][0]
    assert english["message"].startswith("Too many requests; please try again in")
    picked = (await post(4, form(40, language="zh-Hans"), {"Accept-Language": "en-US"})).json()["detail"][0]
    assert picked["message"].startswith("请求过于频繁") and picked["type"] == "rate_limited"


async def test_the_rating_pages_429_is_in_the_readers_language(limited):
    for _ in range(2):
        await limited.post("/v1/csat/forged", data={"score": "5"}, headers=from_address("192.0.2.41"))
    page = await limited.post("/v1/csat/forged", data={"score": "5"}, headers={**from_address("192.0.2.41"), **CHINESE})
    assert page.status_code == 429 and int(page.headers["Retry-After"]) >= 1
    assert "请稍候" in page.text and "秒后重试" in page.text and "Too many requests" not in page.text
    # The rating request's link names the ticket's language: `?lang=` wins over the browser's.
    as_json = await limited.post(
        "/v1/csat/forged?lang=zh-Hans",
        json={"score": 5},
        headers={**from_address("192.0.2.41"), "Accept-Language": "en"},
    )
    assert as_json.status_code == 429
    [detail] = as_json.json()["detail"]
    assert detail["type"] == "rate_limited" and detail["field"] == "(request)"
    assert detail["message"].startswith("请求过于频繁")


async def stamped(client: httpx.AsyncClient) -> str:
    answer = await client.get("/v1/forms/contact/stamp")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    return answer.json()["stamp"]


async def test_a_bot_filling_the_honeypot_gets_a_202_that_opens_no_ticket_until_an_agent_releases_it(
    settings, tmp_path
):
    inbound = Topics(settings.topic_prefix).name(INBOUND)
    async for client in client_for(settings, tmp_path, spam={"min_fill_time": "0s"}):
        stamp = await stamped(client)
        bot = await client.post(
            "/v1/forms/contact", json={**form(1), "website": "http://cheap.example", "form_stamp": stamp}
        )
        assert bot.status_code == 202
        assert set(bot.json()) == {"ticket_id", "message_id"}, "answered like a person"
        person = await client.post("/v1/forms/contact", json={**form(2), "website": "", "form_stamp": stamp})
        assert person.status_code == 202
        [record] = await read_topic(settings.kafka_bootstrap, inbound, at_least=1)
        assert InboundMessage.model_validate_json(record.value).sender.email == "ana2@example.com"

        listed = (await client.get("/v1/quarantine", headers=AUTH)).json()["messages"]
        [kept] = listed
        assert kept["kind"] == "spam" and kept["reason_code"] == "spam_honeypot" and kept["channel"] == "form"
        assert kept["message_id"] == bot.json()["message_id"] and kept["ticket_id"] == bot.json()["ticket_id"]
        assert kept["sender"]["email"] == "ana1@example.com" and kept["released"] is None
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, "form", "quarantined") == 1.0
        assert 'switchboard_quarantined_messages_total{channel="form",reason_code="spam_honeypot"} 1.0' in metrics

        release = f"/v1/quarantine/{kept['message_id']}/release"
        assert (await client.post(release, params={"actor": "ana"})).status_code == 401
        released = await client.post(release, params={"actor": "ana"}, headers=AUTH)
        assert released.status_code == 200, released.text
        assert released.json() == {"ticket_id": bot.json()["ticket_id"], "released_now": True, "actor": "ana"}
        records = await read_topic(settings.kafka_bootstrap, inbound, at_least=2)
        opened = [InboundMessage.model_validate_json(record.value) for record in records]
        [freed] = [message for message in opened if message.sender.email == "ana1@example.com"]
        # The very message the bot sent, on the ticket it was told.
        assert freed.ticket_id == bot.json()["ticket_id"] and str(freed.message_id) == bot.json()["message_id"]
        assert freed.text == form(1)["message"] and freed.channel == "form"

        again = await client.post(release, params={"actor": "ben"}, headers=AUTH)
        assert again.json() == {"ticket_id": bot.json()["ticket_id"], "released_now": False, "actor": "ana"}
        assert await topic_size(settings.kafka_bootstrap, inbound) == 2, "a second release publishes nothing"
        shown = (await client.get(f"/v1/quarantine/{kept['message_id']}", headers=AUTH)).json()
        assert shown["released"]["actor"] == "ana" and shown["released"]["ticket_id"] == freed.ticket_id
        quarantine = Topics(settings.topic_prefix).name(QUARANTINE)
        types = [r.value for r in await read_topic(settings.kafka_bootstrap, quarantine, at_least=2)]
        assert sum(b'"message.released"' in value for value in types) == 1


async def test_too_fast_forged_and_missing_stamps(settings, tmp_path):
    async for client in client_for(settings, tmp_path, spam={"min_fill_time": "1h", "stamp": "required"}):
        stamp = await stamped(client)
        too_fast = await client.post("/v1/forms/contact", json={**form(1), "form_stamp": stamp})
        assert too_fast.status_code == 202
        millis, _, mac = stamp.partition(".")
        older = f"{int(millis) - 2 * 3600 * 1000}.{mac}"
        forged = await client.post("/v1/forms/contact", json={**form(2), "form_stamp": older})
        assert forged.status_code == 202
        missing = await client.post("/v1/forms/contact", json=form(3))
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["field"] == "form_stamp"
        reasons = {
            m["sender"]["email"]: m["reason_code"]
            for m in (await client.get("/v1/quarantine", headers=AUTH)).json()["messages"]
        }
        assert reasons == {"ana1@example.com": "spam_too_fast", "ana2@example.com": "spam_bad_stamp"}
        assert await topic_size(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(INBOUND)) == 0
        assert metric((await client.get("/metrics")).text, "form", "refused") == 1.0


async def test_a_captcha_is_verified_with_the_provider(settings, tmp_path, fake_siteverify):
    captcha = {"provider": "turnstile", "site_key": "1x00000000000000000000AA", "verify_url": fake_siteverify.url}
    configured = settings.model_copy(
        update={
            "config": desk_config(tmp_path, spam={"captcha": captcha}, limits=LIMITS),
            "captcha_secret": SecretStr(CAPTCHA_SECRET),
        }
    )
    async with in_process_client(create_app(configured)) as client:
        guard = (await client.get("/v1/forms/contact/stamp")).json()
        assert guard["captcha"] == {"provider": "turnstile", "site_key": captcha["site_key"]}
        headers = from_address("198.51.100.20")
        person = await client.post(
            "/v1/forms/contact", json={**form(1), "captcha_token": PASSING_TOKEN}, headers=headers
        )
        assert person.status_code == 202
        bot = await client.post("/v1/forms/contact", json={**form(2), "captcha_token": "made-up"}, headers=headers)
        assert bot.status_code == 202
        missing = await client.post("/v1/forms/contact", json=form(3), headers=headers)
        assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "captcha_token"
        assert missing.json()["detail"][0]["message"] == "Please complete the captcha."
        in_chinese = await client.post("/v1/forms/contact", json=form(4, language="zh-Hans"), headers=headers)
        assert in_chinese.status_code == 422
        assert in_chinese.json()["detail"] == [
            {"field": "captcha_token", "message": "请完成人机验证。", "type": "missing"}
        ]
        [kept] = (await client.get("/v1/quarantine", headers=AUTH)).json()["messages"]
        assert kept["sender"]["email"] == "ana2@example.com" and kept["reason_code"] == "spam_captcha_failed"
        assert {v.secret for v in fake_siteverify.verifications} == {CAPTCHA_SECRET}
        assert {v.remoteip for v in fake_siteverify.verifications} == {"198.51.100.20"}
        assert await topic_size(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(INBOUND)) == 1


async def test_a_captcha_provider_that_cannot_answer_is_a_503_in_the_readers_language(
    settings, tmp_path, fake_siteverify
):
    # A siteverify URL the provider does not serve: it answers HTTP 404.
    captcha = {"provider": "hcaptcha", "site_key": "10000000-ffff", "verify_url": f"{fake_siteverify.url}/gone"}
    configured = settings.model_copy(
        update={"config": desk_config(tmp_path, spam={"captcha": captcha}), "captcha_secret": SecretStr(CAPTCHA_SECRET)}
    )
    async with in_process_client(create_app(configured)) as client:
        fields = {**form(1), "captcha_token": PASSING_TOKEN}
        english = await client.post("/v1/forms/contact", json=fields)
        assert english.status_code == 503
        assert english.json() == {"detail": "captcha verification unavailable, retry later"}
        chinese = await client.post("/v1/forms/contact", json=fields, headers=CHINESE)
        assert chinese.status_code == 503 and chinese.json() == {"detail": "人机验证暂时不可用，请稍后重试。"}
        assert await topic_size(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(INBOUND)) == 0


async def test_siteverify_reuses_one_connection_while_the_app_runs_and_closes_it_when_the_app_stops(
    settings, tmp_path, fake_siteverify
):
    captcha = {"provider": "turnstile", "site_key": "1x00000000000000000000AA", "verify_url": fake_siteverify.url}
    configured = settings.model_copy(
        update={"config": desk_config(tmp_path, spam={"captcha": captcha}), "captcha_secret": SecretStr(CAPTCHA_SECRET)}
    )
    async with in_process_client(create_app(configured)) as client:
        for number in (1, 2):
            posted = await client.post("/v1/forms/contact", json={**form(number), "captcha_token": PASSING_TOKEN})
            assert posted.status_code == 202
        assert len(fake_siteverify.verifications) == 2
        assert len({v.client_port for v in fake_siteverify.verifications}) == 1
        assert fake_siteverify.open_connections == 1
    eventually(lambda: fake_siteverify.open_connections == 0, "the siteverify connection closed", timeout=10)


async def test_the_help_centre_searches_are_limited_per_client(limited):
    search = [
        await limited.get("/v1/kb/search", params={"q": "refund"}, headers=from_address("192.0.2.6")) for _ in range(2)
    ]
    assert [answer.status_code for answer in search] == [200, 200]
    page = await limited.get("/kb", params={"q": "refund"}, headers=from_address("192.0.2.6"))
    assert page.status_code == 429 and int(page.headers["Retry-After"]) >= 1
    # Reading the articles is no search: never limited.
    assert (await limited.get("/kb", headers=from_address("192.0.2.6"))).status_code == 200
    assert (await limited.get("/v1/kb/search", params={"q": "x"}, headers=from_address("192.0.2.7"))).status_code == 200
