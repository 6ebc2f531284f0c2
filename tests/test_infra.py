"""switchboard.infra against a real Kafka broker and redis-server, plus its checks for missing tools."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from switchboard.infra import MissingTool, kafka_jars, recorded_infra, start_infra


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _round_trip_through_kafka(bootstrap: str) -> bytes:
    topic = f"infra-test-{uuid.uuid4().hex}"  # auto-created by the broker
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello, switchboard")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    return record.value


@pytest.mark.integration
def test_started_infra_serves_kafka_and_redis_and_stops_completely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cluster ID that begins with "-" (1 in 64 of them) must not be taken for an option.
    monkeypatch.setattr("switchboard.infra.uuid.uuid4", lambda: uuid.UUID(bytes=b"\xf8" + os.urandom(15)))
    infra = start_infra(tmp_path, detached=False, prefer_default_ports=False)
    try:
        recorded = recorded_infra(tmp_path)
        assert recorded is not None
        assert recorded["kafka_bootstrap"] == infra.endpoints.kafka_bootstrap
        assert recorded["redis_url"] == infra.endpoints.redis_url
        assert recorded["detached"] is False
        assert recorded["owner_pid"] == os.getpid()
        assert not infra.endpoints.kafka_bootstrap.endswith(":9092")
        assert not infra.endpoints.redis_url.startswith("redis://127.0.0.1:6379/")

        assert asyncio.run(_round_trip_through_kafka(infra.endpoints.kafka_bootstrap)) == b"hello, switchboard"
        with redis.Redis.from_url(infra.endpoints.redis_url, decode_responses=True) as client:
            client.set("greeting", "hello")
            assert client.get("greeting") == "hello"
            # Durable by default (SPEC §4): every write in the append-only file, fsynced every second.
            durability = client.config_get("append*")
            assert (durability["appendonly"], durability["appendfsync"]) == ("yes", "everysec")
    finally:
        infra.stop()

    assert not _process_exists(recorded["kafka_pid"])
    assert not _process_exists(recorded["redis_pid"])
    assert recorded_infra(tmp_path) is None
    assert not (tmp_path / "infra.json").exists()
    infra.stop()  # a second stop is harmless


def test_missing_java_is_reported_with_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))

    with pytest.raises(MissingTool) as raised:
        start_infra(tmp_path / "data", detached=False)

    assert "Java 17+ is required" in str(raised.value)
    assert "apt-get install openjdk-17-jre-headless" in str(raised.value)
    assert not (tmp_path / "data" / "infra.json").exists()


def test_missing_maven_is_reported_only_while_the_jars_are_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))

    with pytest.raises(MissingTool, match=r"Maven \(mvn\) is required.*apt-get install maven"):
        kafka_jars(tmp_path)

    cached_jar = tmp_path / "kafka-libs" / "kafka_2.13-4.1.1.jar"
    cached_jar.parent.mkdir()
    cached_jar.touch()
    assert kafka_jars(tmp_path) == cached_jar.parent
