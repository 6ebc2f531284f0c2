"""Helpers for tests that run Switchboard's services as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from shared.settings import Settings
from shared.topics import partitions_of

READY_TIMEOUT = 60.0


def start_redis(port: int, directory: Path, *, appendonly: bool = True) -> subprocess.Popen:
    """A redis-server of the test's own on loopback, answering when this returns.

    With its append-only file, as Switchboard runs Redis, a restart is an outage, not a loss of the
    state; without it (`appendonly=False`) a killed server comes back empty.
    """
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes" if appendonly else "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port, socket_connect_timeout=1)
    try:
        eventually(lambda: _answers(client), "redis-server answers", timeout=30)
    finally:
        client.close()
    return process


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def eventually(condition, what: str, timeout: float = 60):
    """Polls `condition` until it returns something truthy, and returns that; fails naming `what`."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"not in {timeout}s: {what}"
        time.sleep(0.1)
    return found


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    redis_url: str


def service_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
            "SWITCHBOARD_REDIS_URL": settings.redis_url or "",
            "SWITCHBOARD_TOPIC_PREFIX": settings.topic_prefix,
            "SWITCHBOARD_DATA_DIR": str(settings.data_dir),
            "SWITCHBOARD_CONFIG": str(settings.config),
            "SWITCHBOARD_HTTP_PORT": str(settings.http_port),
            "SWITCHBOARD_API_TOKEN": settings.api_token.get_secret_value() if settings.api_token else "",
        }
    )
    env.update(extra or {})
    return env


class ServiceProcesses:
    def __init__(self, settings: Settings, log_dir: Path, extra_env: dict[str, str] | None = None):
        self.settings = settings
        self.log_dir = log_dir
        self.extra_env = dict(extra_env or {})
        self.running: dict[str, subprocess.Popen] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *, instance: str | None = None, **env: str) -> subprocess.Popen:
        """Starts `switchboard run NAME`; `instance` names a second copy of the same service."""
        label = instance or name
        process = subprocess.Popen(
            [sys.executable, "-m", "switchboard", "run", name],
            env=service_env(self.settings, {**self.extra_env, **env}),
            stdout=subprocess.DEVNULL,
            stderr=(self.log_dir / f"{label}.log").open("ab"),
        )
        self.running[label] = process
        return process

    def start_http(self, *, port: int | None = None, instance: str | None = None, **env: str) -> str:
        """Starts intake-http and returns its base URL once /readyz says ready."""
        port = port or self.settings.http_port
        process = self.start("intake-http", instance=instance, SWITCHBOARD_HTTP_PORT=str(port), **env)
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"intake-http exited:\n{self.log(instance or 'intake-http')}")
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    return base_url
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"intake-http not ready in {READY_TIMEOUT}s:\n{self.log(instance or 'intake-http')}")

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text()[-4000:] if path.exists() else "(no log)"

    def stop_all(self) -> None:
        for process in self.running.values():
            process.terminate()
        for name, process in self.running.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(f"{name} ignored SIGTERM for 20 s") from None
        self.running.clear()


async def read_topic(
    bootstrap: str, topic: str, *, at_least: int, timeout: float = 30, until: Callable[[list], bool] | None = None
) -> list:
    """Every record on `topic` from the beginning, once at least `at_least` have arrived (and `until`,
    given the records so far, holds)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records = []
    try:
        deadline = time.monotonic() + timeout
        while (len(records) < at_least or (until and not until(records))) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for partition_records in batches.values():
                records.extend(partition_records)
        return records
    finally:
        await consumer.stop()


def decoded(records: list) -> list[dict]:
    return [json.loads(record.value) for record in records]


def distinct(records: list) -> list[dict]:
    """The decoded events once each, in first-seen order. Delivery is at least once: a rebalance in a
    consumer group can publish a batch's remembered outcome again, as the very same events."""
    return list({event["event_id"]: event for event in decoded(records)}.values())


def distinct_at_least(count: int) -> Callable[[list], bool]:
    """A `read_topic(until=...)` predicate: `count` distinct events have arrived."""
    return lambda records: len({json.loads(record.value)["event_id"] for record in records}) >= count


async def topic_size(bootstrap: str, topic: str) -> int:
    """How many records were ever written to `topic` (0 when it does not exist)."""
    partitions = await partitions_of(bootstrap, topic)
    if not partitions:
        return 0
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def wait_until_consumed(bootstrap: str, group_id: str, topic: str, timeout: float = 30) -> None:
    """Waits until `group_id` has committed every record of `topic` written so far (its effects are done)."""
    from aiokafka.admin import AIOKafkaAdminClient

    partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while True:
            committed = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
            behind = {
                tp: end for tp, end in ends.items() if end and (tp not in committed or committed[tp].offset < end)
            }
            if not behind:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{group_id} has not consumed {topic} in {timeout}s: {behind}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
        await consumer.stop()


async def partitions_held(bootstrap: str, group_id: str, topic: str) -> dict[str, set[int]]:
    """The partitions of `topic` each member of `group_id` holds now, by member ID ({} while it rebalances)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group_id])
    finally:
        await admin.close()
    [group] = response.to_object()["groups"]
    if group["state"] != "Stable":
        return {}
    held = {}
    for member in group["members"]:
        assignment = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
        held[member["member_id"]] = {
            partition for name, partitions in assignment.assignment if name == topic for partition in partitions
        }
    return held


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The offset the next record of each partition of `topic` will get."""
    partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group_id: str, topic: str) -> dict[int, int]:
    """The offset `group_id` committed on each partition of `topic` (0 where it committed none)."""
    from aiokafka.admin import AIOKafkaAdminClient

    partitions = await partitions_of(bootstrap, topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
    finally:
        await admin.close()
    return {tp.partition: max(0, committed[tp].offset) if tp in committed else 0 for tp in partitions}


def wait_for_ticket(base_url: str, ticket_id: str, token: str, ready, timeout: float = 30) -> dict:
    """Polls the read API until `ready(ticket)` holds; fails with the last state seen."""
    deadline = time.monotonic() + timeout
    ticket = None
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{base_url}/v1/tickets/{ticket_id}", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        if response.status_code == 200:
            ticket = response.json()
            if ready(ticket):
                return ticket
        time.sleep(0.1)
    raise AssertionError(f"ticket {ticket_id} not ready in {timeout}s; last seen: {ticket}")


@asynccontextmanager
async def in_process_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `app` running in this process, its lifespan (broker, Redis) started."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
            yield client


def switchboard_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """Runs `switchboard ARGS` as a user would, against this test's stack."""
    return subprocess.run(
        [sys.executable, "-m", "switchboard", *args],
        env=service_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def reply_as_agent(settings: Settings, ticket_id: str, text: str) -> None:
    result = switchboard_cli(settings, "ticket", "reply", ticket_id, text)
    assert result.returncode == 0, result.stderr
