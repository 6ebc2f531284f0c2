"""Shared fixtures: one real Kafka broker and one real Redis for the whole test session.

Where they come from, in order: SWITCHBOARD_KAFKA_BOOTSTRAP + SWITCHBOARD_REDIS_URL (an existing
cluster; the tests flush that Redis database), testcontainers when a Docker engine answers, else
the same local processes `switchboard infra up` runs. Each test gets its own topic prefix and a
flushed Redis, so tests never see each other's messages.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient

from shared.settings import EXAMPLE_CONFIG, Settings
from shared.state import RESTORED_KEY
from shared.topics import Topics
from switchboard.stack import free_loopback_port as free_port
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.smtp_sink import SmtpSink
from tests.fakes.telegram_api import FakeTelegramApi
from tests.support import Endpoints, ServiceProcesses

API_TOKEN = "test-api-token"
SLACK_TOKEN = "xoxb-test"
SLACK_SIGNING_SECRET = "switchboard-test-signing-secret"
TELEGRAM_TOKEN = "123456789:AAHfake-telegram-token-for-switchboard-tests"
TELEGRAM_SECRET = "webhook-secret_0123456789"
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    bootstrap = os.environ.get("SWITCHBOARD_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("SWITCHBOARD_REDIS_URL")
    if bootstrap and redis_url:
        yield Endpoints(bootstrap, redis_url)
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

        with KafkaContainer().with_kraft() as kafka, RedisContainer() as redis_container:
            host = redis_container.get_container_host_ip()
            port = redis_container.get_exposed_port(6379)
            yield Endpoints(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0")
        return
    from switchboard.infra import start_infra

    local = start_infra(tmp_path_factory.mktemp("infra"), detached=False, prefer_default_ports=False)
    try:
        yield Endpoints(local.endpoints.kafka_bootstrap, local.endpoints.redis_url)
    finally:
        local.stop()


@pytest.fixture
async def settings(infra: Endpoints, tmp_path: Path) -> AsyncIterator[Settings]:
    store = redis.Redis.from_url(infra.redis_url)
    store.flushdb()
    # A new installation: its topics (fresh prefix) are empty, so Redis holds all the state there is.
    store.set(RESTORED_KEY, "new installation (test)")
    prefix = f"t{uuid.uuid4().hex[:10]}."
    yield Settings(
        kafka_bootstrap=infra.kafka_bootstrap,
        redis_url=infra.redis_url,
        topic_prefix=prefix,
        data_dir=tmp_path / "data",
        config=EXAMPLE_CONFIG,
        api_token=API_TOKEN,
        http_port=free_port(),
        slack_bot_token=None,
    )
    # Every test's topics go with it: a broker holding thousands of partitions runs out of files.
    await _delete_topics(infra.kafka_bootstrap, Topics(prefix).all_names())


async def _delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if doomed := [name for name in names if name in existing]:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(bot_token=SLACK_TOKEN) as api:
        yield api


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(bot_token=TELEGRAM_TOKEN) as api:
        yield api


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def services(
    settings: Settings, fake_slack: FakeSlackApi, fake_telegram: FakeTelegramApi, smtp_sink: SmtpSink, tmp_path: Path
) -> Iterator[ServiceProcesses]:
    """Starts services as real processes (`switchboard run NAME`) wired to this test's settings."""
    processes = ServiceProcesses(
        settings,
        tmp_path / "logs",
        extra_env={
            "SWITCHBOARD_SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SWITCHBOARD_SLACK_API_URL": fake_slack.base_url,
            "SWITCHBOARD_SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
            "SWITCHBOARD_SMTP_RELAY_HOST": "127.0.0.1",
            "SWITCHBOARD_SMTP_RELAY_PORT": str(smtp_sink.port),
            "SWITCHBOARD_MAIL_FROM": "support@example.com",
            "SWITCHBOARD_TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
            "SWITCHBOARD_TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
            "SWITCHBOARD_TELEGRAM_API_URL": fake_telegram.base_url,
        },
    )
    try:
        yield processes
    finally:
        processes.stop_all()
