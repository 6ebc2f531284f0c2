"""WeChat Customer Service through the running stack: callback → kf/sync_msg → ticket → acknowledgement and
agent replies through kf/send_msg; the reply window; the sync cursor across a SIGKILL of intake-http."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest

from shared.redis_client import connect_redis
from shared.topics import INBOUND, Topics
from shared.wecom_window import window_key
from tests.conftest import API_TOKEN
from tests.fakes.wecom_api import OPEN_KFID, FakeWecomApi
from tests.support import ServiceProcesses, reply_as_agent, topic_size, wait_for_ticket

pytestmark = pytest.mark.integration

CUSTOMER = "wmStackCustomer01"


@pytest.fixture
def fake_wecom() -> Iterator[FakeWecomApi]:
    with FakeWecomApi() as api:
        yield api


def post_callback(base_url: str, fake: FakeWecomApi, **options) -> httpx.Response:
    query, body = fake.callback(**options)
    return httpx.post(f"{base_url}/v1/wecom/callback", params=query, content=body, timeout=30)


def sent_texts(fake: FakeWecomApi) -> list[str]:
    return [call.args["text"]["content"] for call in fake.calls_to("kf/send_msg")]


async def test_a_wechat_message_becomes_a_ticket_acknowledged_and_answered_through_kf_send_msg(
    services: ServiceProcesses, fake_wecom: FakeWecomApi, fake_slack, settings
):
    for name in ("router", "notifier"):
        services.start(name, **fake_wecom.env())
    base_url = services.start_http(**fake_wecom.env())

    # Refused before anything happens: nothing fetched, nothing on Kafka.
    forged = post_callback(base_url, fake_wecom, signature=hashlib.sha1(b"forged").hexdigest())
    assert forged.status_code == 403
    assert await topic_size(settings.kafka_bootstrap, Topics(settings.topic_prefix).name(INBOUND)) == 0

    fake_wecom.add_message(CUSTOMER, "text", {"content": "我的订单还没到 / my order has not arrived"}, msgid="s1")
    assert post_callback(base_url, fake_wecom).status_code == 200
    [ack] = fake_wecom.wait_for_calls_sync("kf/send_msg", timeout=30)
    assert ack.args["touser"] == CUSTOMER and ack.args["open_kfid"] == OPEN_KFID
    ticket_id = re.search(r"SB-\d+", ack.args["text"]["content"]).group(0)
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
    assert ticket["channel"] == "wecom" and ticket["contact"]["wecom_external_userids"] == [CUSTOMER]

    # The same callback again (WeCom retries): nothing new. A new message joins the open ticket.
    assert post_callback(base_url, fake_wecom).status_code == 200
    fake_wecom.add_message(CUSTOMER, "text", {"content": "It was due Monday"}, msgid="s2")
    assert post_callback(base_url, fake_wecom).status_code == 200
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: len(t["messages"]) >= 2)
    assert [m["text"] for m in ticket["messages"]][1] == "It was due Monday"
    assert len(ticket["messages"]) == 2

    reply_as_agent(services.settings, ticket_id, "We are sending a new parcel today.")
    fake_wecom.wait_for_calls_sync(
        "kf/send_msg", predicate=lambda call: call.args["text"]["content"] == "We are sending a new parcel today."
    )
    assert len(fake_wecom.calls_to("kf/send_msg")) == 2, "one acknowledgement, one reply"

    # WeChat's window is used up (5 messages since the customer wrote): the next reply is held, the agent told.
    redis = connect_redis(settings.redis_url)
    try:
        await redis.hset(window_key(f"{OPEN_KFID}:{CUSTOMER}"), "sent", 5)
    finally:
        await redis.aclose()
    reply_as_agent(services.settings, ticket_id, "Any news on your side?")
    [warning] = fake_slack.wait_for_calls_sync(
        "chat.postMessage", timeout=30, predicate=lambda call: "Not delivered" in str(call.args.get("text"))
    )
    assert "WeChat allows 5 messages" in warning.args["text"]
    assert "Any news on your side?" not in sent_texts(fake_wecom)


async def test_the_sync_cursor_survives_a_sigkill_of_intake(services: ServiceProcesses, fake_wecom, settings):
    base_url = services.start_http(**fake_wecom.env())
    fake_wecom.add_message(CUSTOMER, "text", {"content": "first"}, msgid="k1")
    assert post_callback(base_url, fake_wecom).status_code == 200
    inbound = Topics(settings.topic_prefix).name(INBOUND)
    assert await topic_size(settings.kafka_bootstrap, inbound) == 1

    services.kill("intake-http")
    fake_wecom.add_message(CUSTOMER, "text", {"content": "second"}, msgid="k2")
    base_url = services.start_http(**fake_wecom.env())
    assert post_callback(base_url, fake_wecom).status_code == 200

    last_sync = fake_wecom.calls_to("kf/sync_msg")[-1]
    assert last_sync.args["cursor"] == "cur-1", "the restarted intake continues where the killed one stopped"
    assert [item["msgid"] for item in last_sync.response["msg_list"]] == ["k2"]
    assert await topic_size(settings.kafka_bootstrap, inbound) == 2, "only the new message was taken"
