"""Sending load: forms to intake-http over HTTP, backlogs straight to a topic, and the raw Kafka pass-through."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from switchboard.bench.stats import Rate
from switchboard.bench.workload import Record, Workload, records_in_order

_JSON = {"content-type": "application/json"}
# Sends awaited together when pre-filling: enough to keep the producer's batches full.
_SEND_WINDOW = 5000
RAW_PARTITIONS = 8


class FormPoster:
    """Posts `n` web forms to the intake-http instances in turn, at `rate` per second or as fast as they answer.

    Open loop at a given rate (a form is sent on schedule whether or not earlier ones were answered),
    but never more than `concurrency` in flight: past that the offered rate is not reached, which the
    report shows as an accepted rate below the offered one.
    """

    def __init__(
        self,
        base_urls: Sequence[str],
        workload: Workload,
        *,
        n: int,
        rate: float,
        duration: float | None,
        concurrency: int,
        client_address: str | None = None,
        first_index: int = 0,
    ):
        """`client_address`: posted as from that client (X-Forwarded-For through the trusted loopback proxy);
        `first_index`: the workload's first form, so two posters send different customers."""
        self.urls = [f"{base}/v1/forms/{workload.form_id}" for base in base_urls]
        self.workload = workload
        self.n, self.rate, self.duration, self.concurrency = n, rate, duration, concurrency
        self.headers = {**_JSON, "x-forwarded-for": client_address} if client_address else _JSON
        self.first_index = first_index
        # Seconds from sending each accepted form to its 202.
        self.answer_seconds: list[float] = []
        # Ticket ID → time.time() when its 202 arrived: latencies are measured from here.
        self.acknowledged: dict[str, float] = {}
        self.answers: Counter[str] = Counter()  # HTTP status, or the client error's class
        self.sent = 0
        self.first_sent_at: float | None = None
        self.last_answer_at: float | None = None
        self.finished = False

    @property
    def accepted(self) -> int:
        return len(self.acknowledged)

    def rate_achieved(self) -> Rate:
        if self.first_sent_at is None or self.last_answer_at is None:
            return Rate(0, 0.0)
        return Rate(self.accepted, self.last_answer_at - self.first_sent_at)

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=60)
        slots = asyncio.Semaphore(self.concurrency)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                async with asyncio.TaskGroup() as posts:
                    started = time.monotonic()
                    for index in range(self.n):
                        if self.duration is not None and time.monotonic() - started >= self.duration:
                            break
                        if self.rate and (wait := started + index / self.rate - time.monotonic()) > 0:
                            await asyncio.sleep(wait)
                        await slots.acquire()
                        if self.first_sent_at is None:
                            self.first_sent_at = time.time()
                        posts.create_task(self._post(session, index, slots))
                        self.sent += 1
        finally:
            self.finished = True

    async def _post(self, session: aiohttp.ClientSession, index: int, slots: asyncio.Semaphore) -> None:
        try:
            url = self.urls[index % len(self.urls)]
            body = self.workload.form_body(self.first_index + index)
            sent = time.monotonic()
            async with session.post(url, data=body, headers=self.headers) as response:
                body = await response.read()
                answered = time.time()
                if response.status == 202:
                    self.acknowledged[json.loads(body)["ticket_id"]] = answered
                    self.answer_seconds.append(time.monotonic() - sent)
            self.answers[str(response.status)] += 1
            self.last_answer_at = answered
        except (aiohttp.ClientError, TimeoutError) as error:
            self.answers[type(error).__name__] += 1
        finally:
            slots.release()


def producer(bootstrap: str) -> AIOKafkaProducer:
    """Configured like the services' producers (acks=all, idempotent), with batches sized for bulk."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=10,
        max_batch_size=256 * 1024,
    )


async def prefill(
    bootstrap: str, topic: str, records: Iterable[Record], on_progress: Callable[[int], None] = lambda _: None
) -> int:
    """Write `records` to `topic`, batched; returns how many the broker acknowledged."""
    written = 0
    sender = producer(bootstrap)
    await sender.start()
    try:
        window: list[asyncio.Future] = []
        for record in records:
            window.append(await sender.send(topic, record.value, key=record.key, headers=record.headers))
            if len(window) >= _SEND_WINDOW:
                written += len(await asyncio.gather(*window))
                window.clear()
                on_progress(written)
        written += len(await asyncio.gather(*window))
        on_progress(written)
    finally:
        await sender.stop()
    return written


async def create_scratch_topic(bootstrap: str, topic: str) -> None:
    """The raw pass-through's topic, once its partitions have leaders (clients that look earlier log errors)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=RAW_PARTITIONS, replication_factor=1)])
        while not await _has_leaders(admin, topic):
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def raw_passthrough(bootstrap: str, topic: str, count: int, payload: bytes, keys: Callable[[int], bytes]) -> Rate:
    """Time `count` records of `payload` produced to the empty scratch `topic` and consumed back by one consumer.

    The clock runs from the first send to the last record received: the broker's and aiokafka's own
    ceiling on this machine, which the pipeline's stages are compared with.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    sender = producer(bootstrap)
    await consumer.start()
    await sender.start()
    try:
        partitions = [TopicPartition(topic, number) for number in range(RAW_PARTITIONS)]
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek(partition, 0)  # a topic we just made starts at 0: no offset lookup to race its leaders
        started = time.monotonic()
        async with asyncio.TaskGroup() as both:
            received = both.create_task(_receive(consumer, count))
            window: list[asyncio.Future] = []
            for index in range(count):
                window.append(await sender.send(topic, payload, key=keys(index)))
                if len(window) >= _SEND_WINDOW:
                    await asyncio.gather(*window)
                    window.clear()
            await asyncio.gather(*window)
        return Rate(received.result(), time.monotonic() - started)
    finally:
        await sender.stop()
        await consumer.stop()


# Records a router-shaped pass-through cycles through as its output (precomputed: making them is not Kafka's work).
_SHAPED_SAMPLE = 1000


async def router_shaped_passthrough(
    bootstrap: str, in_topic: str, out_topic: str, group_id: str, workload: Workload, count: int
) -> Rate:
    """Kafka's and aiokafka's own ceiling for a stage shaped like the router, with no work of its own: `count`
    inbound records pre-filled on `in_topic` are consumed in batches of up to 500 by a consumer group, each
    answered with the three records the router writes for a new ticket (the workload's created, message and
    assigned, on `out_topic` under the same key), every acknowledgement awaited, then the batch committed.
    The clock runs from the first batch fetched to the last commit."""
    await prefill(bootstrap, in_topic, records_in_order(workload.inbound_record, count))
    answers = [workload.ticket_records(index) for index in range(_SHAPED_SAMPLE)]
    consumer = AIOKafkaConsumer(
        in_topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    sender = producer(bootstrap)
    await consumer.start()
    await sender.start()
    try:
        done, started = 0, None
        while done < count:
            fetched = await consumer.getmany(timeout_ms=500, max_records=500)
            if not fetched:
                continue
            started = started or time.monotonic()
            sent = [
                await sender.send(out_topic, answer.value, key=record.key, headers=answer.headers)
                for records in fetched.values()
                for record in records
                for answer in answers[record.offset % _SHAPED_SAMPLE]
            ]
            await asyncio.gather(*sent)
            await consumer.commit({partition: records[-1].offset + 1 for partition, records in fetched.items()})
            done += sum(len(records) for records in fetched.values())
        return Rate(done, time.monotonic() - (started or time.monotonic()))
    finally:
        await sender.stop()
        await consumer.stop()


async def _receive(consumer: AIOKafkaConsumer, count: int) -> int:
    received = 0
    while received < count:
        batches = await consumer.getmany(timeout_ms=500, max_records=_SEND_WINDOW)
        received += sum(len(records) for records in batches.values())
    return received


async def _has_leaders(admin: AIOKafkaAdminClient, topic: str) -> bool:
    [described] = await admin.describe_topics([topic])
    partitions = described["partitions"]
    return (
        not described["error_code"]
        and len(partitions) == RAW_PARTITIONS
        and all(partition["leader"] >= 0 for partition in partitions)
    )
