"""intake-http in-process with every channel on: forms, read API, web chat, Telegram and Slack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from services.intake.http import create_app
from services.router.handler import RouterHandler
from services.router.state import RouterState
from shared.config import load_config
from shared.read_model import ReadModel
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.topics import INBOUND, Topics, partitions_of
from tests.conftest import SLACK_SIGNING_SECRET, SLACK_TOKEN, TELEGRAM_SECRET, TELEGRAM_TOKEN
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.telegram_api import FakeTelegramApi
from tests.support import in_process_client


@pytest.fixture
async def handler(settings):
    """The router's batch handler on the test's real Redis, publishing to topics prefixed `t.` (tests feed
    it records directly; what it would publish is in its result)."""
    redis = connect_redis(settings.redis_url)
    try:
        yield RouterHandler(load_config(settings.config), RouterState(redis), ReadModel(redis), Topics("t."))
    finally:
        await redis.aclose()


def slack_signed(body: bytes, secret: str = SLACK_SIGNING_SECRET) -> dict[str, str]:
    """The headers Slack sends with `body`, signed now."""
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body.decode("utf-8"))
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}


@pytest.fixture
def all_channels(settings: Settings, fake_slack: FakeSlackApi, fake_telegram: FakeTelegramApi) -> Settings:
    return settings.model_copy(
        update={
            "slack_bot_token": SecretStr(SLACK_TOKEN),
            "slack_signing_secret": SecretStr(SLACK_SIGNING_SECRET),
            "slack_api_url": fake_slack.base_url,
            "telegram_bot_token": SecretStr(TELEGRAM_TOKEN),
            "telegram_webhook_secret": SecretStr(TELEGRAM_SECRET),
            "telegram_api_url": fake_telegram.base_url,
        }
    )


@pytest.fixture
async def intake_http(all_channels: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the whole intake-http app, running in this process on the real broker and Redis."""
    async with in_process_client(create_app(all_channels)) as client:
        yield client


class InboundCount:
    """How many records the inbound topic holds, asked of one consumer (cheap enough to ask often)."""

    def __init__(self, consumer: AIOKafkaConsumer, partitions: list):
        self._consumer = consumer
        self._partitions = partitions

    async def __call__(self) -> int:
        return sum((await self._consumer.end_offsets(self._partitions)).values())


@pytest.fixture
async def inbound_count(all_channels: Settings, intake_http: httpx.AsyncClient) -> AsyncIterator[InboundCount]:
    # The app's start-up created the topic; a freshly created one may not show all its partitions yet.
    topic = Topics(all_channels.topic_prefix).name(INBOUND)
    while len(partitions := await partitions_of(all_channels.kafka_bootstrap, topic)) < INBOUND.partitions:
        await asyncio.sleep(0.1)
    consumer = AIOKafkaConsumer(bootstrap_servers=all_channels.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        # Fetches the cluster's metadata: a consumer that has not seen the topic yet counts nothing.
        while topic not in await consumer.topics():
            await asyncio.sleep(0.1)
        # Not assigned: a consumer with partitions keeps fetching, and answers end_offsets ~0.5 s late.
        yield InboundCount(consumer, partitions)
    finally:
        await consumer.stop()
