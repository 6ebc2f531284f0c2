"""The daily report digest on the real broker and Redis, posting to the fake Slack: the tables as a message, the
chart uploaded through Slack's external upload into its thread; once a day across instances, restarts and a
lost Redis (the run is an event on the reports topic that `switchboard replay` restores)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from services.reports.digest import DIGESTS_KEY, DigestRunner
from services.sla.app import create_app as sla_app
from shared.config import load_config
from shared.events import ContactSummary, TicketCreated
from shared.publisher import Outgoing, Publisher
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.topics import REPORTS, TICKETS, Topics, ensure_topics
from switchboard.replay import replay_all
from tests.conftest import SLACK_TOKEN
from tests.fakes.slack_api import FakeSlackApi
from tests.support import in_process_client, read_topic

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "reports" / "config.yaml"
CHANNEL = "C0REPORTS"


@pytest.fixture
def desk(settings: Settings, fake_slack: FakeSlackApi) -> Settings:
    return settings.model_copy(
        update={"config": CONFIG, "slack_bot_token": SecretStr(SLACK_TOKEN), "slack_api_url": fake_slack.base_url}
    )


@pytest.fixture
async def publisher(desk: Settings):
    publisher = Publisher(desk.kafka_bootstrap, client_id="test", registry=CollectorRegistry())
    await publisher.start()
    try:
        yield publisher
    finally:
        await publisher.stop()


async def a_ticket(desk: Settings, publisher: Publisher) -> None:
    """One ticket created in the digest's week, for the report to count."""
    topics = Topics(desk.topic_prefix)
    await ensure_topics(desk.kafka_bootstrap, topics)
    created = TicketCreated(
        event_id=uuid.uuid4(), occurred_at=datetime(2026, 11, 27, 10, tzinfo=UTC), ticket_id="RP-1001",
        channel="form", subject="Login fails", contact=ContactSummary(contact_id="c1"), team="support",
        category="general", priority="normal",
    )  # fmt: skip
    await publisher.publish(Outgoing.event(topics.name(TICKETS), created.ticket_id, created))


def runner(desk: Settings, publisher: Publisher, redis, fake_slack: FakeSlackApi) -> DigestRunner:
    """One SLA instance's digest runner."""
    config = load_config(desk.config)
    slack = AsyncWebClient(token=SLACK_TOKEN, base_url=fake_slack.base_url)
    topics = Topics(desk.topic_prefix)
    return DigestRunner(config.reports.digest, config, desk.kafka_bootstrap, topics, redis, publisher, slack)


async def test_the_digest_posts_the_table_and_uploads_the_chart_once_a_day_across_instances_and_a_lost_redis(
    desk: Settings, publisher: Publisher, fake_slack: FakeSlackApi
):
    await a_ticket(desk, publisher)
    redis = connect_redis(desk.redis_url)
    try:
        one, two = (runner(desk, publisher, redis, fake_slack) for _ in range(2))
        assert await one.tick(datetime(2026, 11, 30, 8, 59, tzinfo=UTC)) is None

        at_nine = datetime(2026, 11, 30, 9, 0, 30, tzinfo=UTC)
        posted = [event for event in await asyncio.gather(one.tick(at_nine), two.tick(at_nine)) if event]
        assert len(posted) == 1 and posted[0].day.isoformat() == "2026-11-30"
        assert posted[0].since == datetime(2026, 11, 23, 9, tzinfo=UTC)

        [message] = fake_slack.calls_to("chat.postMessage")
        assert message.args["channel"] == CHANNEL
        assert "Tickets created (1)" in message.args["text"] and "SLA compliance" in message.args["text"]
        assert [call.method for call in fake_slack.calls if call.method.startswith("files.")] == [
            "files.getUploadURLExternal",
            "files.upload_external",
            "files.completeUploadExternal",
        ]
        assert fake_slack.calls_to("files.completeUploadExternal")[0].args["channel_id"] == CHANNEL
        [(file, content)] = fake_slack.shared_files(CHANNEL)
        assert content.startswith(b"\x89PNG") and file["name"] == "switchboard-report-2026-11-30.png"
        assert file["thread_ts"] == message.response["ts"] and posted[0].file_id == file["id"]

        # A restart later that day on an empty Redis, rebuilt by replay: the log says the day was posted.
        records = await read_topic(desk.kafka_bootstrap, Topics(desk.topic_prefix).name(REPORTS), at_least=1)
        assert [json.loads(record.value)["type"] for record in records] == ["report.digest_posted"]
        await redis.flushdb()
        await replay_all(desk.kafka_bootstrap, redis, desk.topic_prefix, config=load_config(desk.config))
        assert await redis.hexists(DIGESTS_KEY, "2026-11-30")
        restarted = runner(desk, publisher, redis, fake_slack)
        assert await restarted.tick(datetime(2026, 11, 30, 15, tzinfo=UTC)) is None
        assert len(fake_slack.calls_to("chat.postMessage")) == 1

        # The next day has its own digest.
        assert await restarted.tick(datetime(2026, 12, 1, 9, 1, tzinfo=UTC)) is not None
        assert len(fake_slack.shared_files(CHANNEL)) == 2
    finally:
        await redis.aclose()


async def test_a_post_slack_refuses_gives_the_day_back_for_the_next_try(
    desk: Settings, publisher: Publisher, fake_slack: FakeSlackApi
):
    await a_ticket(desk, publisher)
    redis = connect_redis(desk.redis_url)
    try:
        digest = runner(desk, publisher, redis, fake_slack)
        fake_slack.fail_next("chat.postMessage", "internal_error")
        with pytest.raises(Exception, match="internal_error"):
            await digest.tick(datetime(2026, 11, 30, 9, 5, tzinfo=UTC))
        assert not await redis.hexists(DIGESTS_KEY, "2026-11-30")
        assert await digest.tick(datetime(2026, 11, 30, 9, 6, tzinfo=UTC)) is not None
    finally:
        await redis.aclose()


async def test_a_chart_slack_refuses_after_the_table_was_posted_keeps_the_day(
    desk: Settings, publisher: Publisher, fake_slack: FakeSlackApi
):
    await a_ticket(desk, publisher)
    redis = connect_redis(desk.redis_url)
    try:
        digest = runner(desk, publisher, redis, fake_slack)
        fake_slack.fail_next("files.completeUploadExternal", "internal_error")
        with pytest.raises(Exception, match="internal_error"):
            await digest.tick(datetime(2026, 11, 30, 9, 5, tzinfo=UTC))
        # The table is in the channel: another try would post it a second time.
        assert await redis.hexists(DIGESTS_KEY, "2026-11-30")
        assert await digest.tick(datetime(2026, 11, 30, 9, 6, tzinfo=UTC)) is None
        assert len(fake_slack.calls_to("chat.postMessage")) == 1
        # The post is on the log all the same (without its chart), so a replay keeps the day claimed.
        [record] = await read_topic(desk.kafka_bootstrap, Topics(desk.topic_prefix).name(REPORTS), at_least=1)
        posted = json.loads(record.value)
        assert (posted["type"], posted["day"], posted["file_id"]) == ("report.digest_posted", "2026-11-30", None)
    finally:
        await redis.aclose()


async def test_the_sla_service_posts_the_digest_when_its_time_comes(
    desk: Settings, publisher: Publisher, fake_slack: FakeSlackApi
):
    await a_ticket(desk, publisher)
    with time_machine.travel(datetime(2026, 11, 30, 9, 2, tzinfo=UTC), tick=False):
        async with in_process_client(sla_app(desk)):
            [message] = await fake_slack.wait_for_calls("chat.postMessage", timeout=60)
            await fake_slack.wait_for_calls("files.completeUploadExternal", timeout=60)
    assert message.args["channel"] == CHANNEL and "Tickets created (1)" in message.args["text"]
    assert len(fake_slack.shared_files(CHANNEL)) == 1
