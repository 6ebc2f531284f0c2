"""The notifier's WeCom transport against the fake WeCom API and the real Redis: kf/send_msg within WeChat's
reply window, held outside it, and WeCom's refusals."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
from pydantic import SecretStr

from services.notifier.deliveries import Sent, Skipped, sent_event
from services.notifier.errors import Refused
from services.notifier.plan import Delivery
from services.notifier.wecom import WecomTransport
from shared.csat import CsatSubject
from shared.events import ReplyRoute
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.wecom_window import customer_wrote, window_key
from tests.fakes.wecom_api import CORP_ID, OPEN_KFID, SECRET, FakeWecomApi

pytestmark = pytest.mark.integration

ADDRESS = f"{OPEN_KFID}:wmCustomer"


@pytest.fixture
def fake_wecom() -> Iterator[FakeWecomApi]:
    with FakeWecomApi() as api:
        yield api


@pytest.fixture
async def transport(settings: Settings, fake_wecom: FakeWecomApi) -> AsyncIterator[WecomTransport]:
    configured = settings.model_copy(
        update={"wecom_corp_id": CORP_ID, "wecom_secret": SecretStr(SECRET), "wecom_api_url": fake_wecom.base_url}
    )
    redis = connect_redis(settings.redis_url)
    transport = WecomTransport(configured, redis)
    try:
        yield transport
    finally:
        await transport.aclose()
        await redis.aclose()


def reply(key: str, text: str) -> Delivery:
    return Delivery(
        key=key,
        ticket_id="SB-1001",
        purpose="reply",
        target=f"wecom:{ADDRESS}",
        text=text,
        route=ReplyRoute(channel="wecom", address=ADDRESS, reply_to_id="m1"),
    )


async def test_replies_go_out_within_the_window_and_are_held_after_five(transport, fake_wecom):
    await customer_wrote(transport.redis, ADDRESS, time.time())
    for index in range(5):
        assert isinstance(await transport.send(reply(f"r{index}", f"answer {index}"), None), Sent)
    held = await transport.send(reply("r5", "one too many"), None)
    assert isinstance(held, Skipped) and "5 messages" in held.reason
    sent = fake_wecom.calls_to("kf/send_msg")
    assert [call.args["text"]["content"] for call in sent] == [f"answer {index}" for index in range(5)]
    assert {call.args["touser"] for call in sent} == {"wmCustomer"}
    # The customer writes again: a new window.
    await customer_wrote(transport.redis, ADDRESS, time.time() + 1)
    assert isinstance(await transport.send(reply("r6", "now it goes"), None), Sent)


async def test_a_long_reply_counts_each_of_its_messages_and_its_record_says_how_many(transport, fake_wecom):
    await customer_wrote(transport.redis, ADDRESS, time.time())
    long = reply("long", "\n".join(f"line {index}: " + "x" * 500 for index in range(10)))

    sent = await transport.send(long, None)

    parts = len(fake_wecom.calls_to("kf/send_msg"))
    assert parts > 1 and isinstance(sent, Sent) and sent.messages == parts
    assert await transport.redis.hget(window_key(ADDRESS), "sent") == str(parts)
    # What replay rebuilds the window from.
    assert sent_event(long, sent).messages == parts


async def test_a_reply_after_48_hours_is_held(transport, fake_wecom):
    await customer_wrote(transport.redis, ADDRESS, time.time() - 49 * 3600)
    held = await transport.send(reply("late", "sorry for the wait"), None)
    assert isinstance(held, Skipped) and "48-hour" in held.reason
    assert not fake_wecom.calls_to("kf/send_msg")
    assert await transport.redis.hget(window_key(ADDRESS), "sent") == "0"


async def test_a_refusal_by_wecom_is_final_and_an_expired_token_is_renewed(transport, fake_wecom):
    await customer_wrote(transport.redis, ADDRESS, time.time())
    assert isinstance(await transport.send(reply("a", "first"), None), Sent)
    fake_wecom.expire_tokens()
    assert isinstance(await transport.send(reply("b", "second"), None), Sent)
    assert len(fake_wecom.calls_to("gettoken")) == 2
    fake_wecom.fail_next("kf/send_msg", 95001, "send msg count limit")
    with pytest.raises(Refused, match="95001"):
        await transport.send(reply("c", "third"), None)


async def test_a_rating_request_goes_out_with_its_rating_link(settings, fake_wecom):
    configured = settings.model_copy(
        update={"wecom_corp_id": CORP_ID, "wecom_secret": SecretStr(SECRET), "wecom_api_url": fake_wecom.base_url}
    )
    redis = connect_redis(settings.redis_url)
    link = "https://desk.example/v1/csat/{}-{}".format
    rating = WecomTransport(configured, redis, csat_link=lambda subject: link(subject.ticket_id, subject.resolution))
    try:
        await customer_wrote(redis, ADDRESS, time.time())
        request = replace(reply("csat1", "How did we do?"), purpose="csat", csat=CsatSubject("SB-1001", 1))

        assert isinstance(await rating.send(request, None), Sent)

        [sent] = fake_wecom.calls_to("kf/send_msg")
        assert sent.args["text"]["content"] == "How did we do?\nhttps://desk.example/v1/csat/SB-1001-1"
    finally:
        await rating.aclose()
        await redis.aclose()
