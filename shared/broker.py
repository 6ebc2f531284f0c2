"""The broker factory: one FastStream Kafka broker per process, with the consumer policy every
service shares — commit after the effect, retry transient failures, dead-letter the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError, KafkaTimeoutError
from faststream import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.middlewares import AckPolicy
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.topics import Topics

logger = logging.getLogger(__name__)


def is_infrastructure_outage(error: BaseException) -> bool:
    """An outage of our own Kafka or Redis: waited out, never a reason to dead-letter a message.

    Failures of the outside world (Slack, the SMTP relay, Telegram) are not: they are retried
    until the deadline and then dead-lettered, or the queue behind them would stall for good.
    """
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return True
    return isinstance(error, KafkaError) and (error.retriable or isinstance(error, KafkaTimeoutError))


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help (e.g. a rejected API call): dead-letter at once."""


@dataclass
class _Failure:
    first_at: float
    attempts: int = 0


@dataclass
class ConsumerPolicy:
    """How a service treats a message its handler could not process.

    - invalid payload (schema violation): straight to `<topic>.dlq`;
    - our infrastructure down (Redis, Kafka): retried with backoff for as long as it takes;
    - anything else: retried with backoff until `retry_deadline` seconds after the first failure,
      then to `<topic>.dlq` with the reason.
    Retrying means raising, so the subscriber seeks back and redelivers the same record: nothing
    behind it on the partition is committed meanwhile.
    """

    topics: Topics
    group_id: str
    registry: CollectorRegistry | None = None
    retry_deadline: float = 60.0
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    broker: KafkaBroker | None = None
    _failures: dict[tuple[str, int, int], _Failure] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._dead_lettered = Counter(
            "switchboard_dead_lettered_messages_total",
            "Messages sent to a dead-letter topic",
            ["topic"],
            registry=self.registry,
        )

    def backoff(self, attempts: int) -> float:
        return min(self.backoff_max, self.backoff_initial * 2 ** max(0, attempts - 1))

    async def dead_letter(self, record: Any, reason: str, error: BaseException) -> None:
        assert self.broker is not None, "ConsumerPolicy.broker is set by make_broker"
        headers = {
            "x-original-topic": record.topic,
            "x-original-partition": str(record.partition),
            "x-original-offset": str(record.offset),
            "x-consumer-group": self.group_id,
            "x-error-class": type(error).__name__,
            "x-error-reason": reason[:2000],
            "x-failed-at": datetime.now(UTC).isoformat(),
        }
        await self.broker.publish(
            record.value,
            topic=self.topics.dlq(record.topic),
            key=record.key,
            headers=headers,
        )
        self._dead_lettered.labels(record.topic).inc()
        logger.warning(
            "message dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason[:500],
            },
        )

    def middleware(self) -> Callable[..., BaseMiddleware]:
        policy = self

        class DeadLetterMiddleware(BaseMiddleware):
            async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
                return await policy.consume(call_next, msg)

        return DeadLetterMiddleware

    async def consume(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
        record = msg.raw_message
        position = (record.topic, record.partition, record.offset)
        try:
            result = await call_next(msg)
        except ValidationError as error:
            self._failures.pop(position, None)
            await self.dead_letter(record, f"invalid message: {_summarise(error)}", error)
            return None
        except PermanentFailure as error:
            self._failures.pop(position, None)
            await self.dead_letter(record, str(error), error)
            return None
        except Exception as error:
            if is_infrastructure_outage(error):
                await self._wait_before_retry(position, error, deadline=None)
                raise
            failure = self._failures.get(position)
            if failure and time.monotonic() - failure.first_at >= self.retry_deadline:
                del self._failures[position]
                await self.dead_letter(record, f"gave up after {failure.attempts} attempts: {error!r}", error)
                return None
            await self._wait_before_retry(position, error, deadline=self.retry_deadline)
            raise
        self._failures.pop(position, None)
        return result

    async def _wait_before_retry(
        self, position: tuple[str, int, int], error: BaseException, deadline: float | None
    ) -> None:
        failure = self._failures.setdefault(position, _Failure(first_at=time.monotonic()))
        failure.attempts += 1
        delay = self.backoff(failure.attempts)
        logger.warning(
            "handler failed, will retry",
            extra={
                "topic": position[0],
                "partition": position[1],
                "offset": position[2],
                "attempt": failure.attempts,
                "retry_in_s": delay,
                "gives_up_after_s": deadline,
                "error": repr(error)[:500],
            },
        )
        await asyncio.sleep(delay)


def _summarise(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in detail['loc']) or '(body)'}: {detail['msg']}"
        for detail in error.errors()[:10]
    )


def make_broker(
    bootstrap: str,
    *,
    client_id: str,
    registry: CollectorRegistry,
    policy: ConsumerPolicy | None = None,
) -> KafkaBroker:
    """A broker that waits for every replica's acknowledgement and never duplicates on retry.

    It counts what it consumes and produces, and how long handlers take, in `registry`.
    """
    middlewares: list[Any] = [KafkaPrometheusMiddleware(registry=registry, app_name=client_id)]
    if policy:
        middlewares.append(policy.middleware())
    broker = KafkaBroker(
        bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        logger=logging.getLogger(f"switchboard.{client_id}.broker"),
        log_level=logging.DEBUG,
        middlewares=middlewares,
    )
    if policy:
        policy.broker = broker
    return broker


SUBSCRIBER_DEFAULTS: dict[str, Any] = {
    # Commit only after the handler (and its effects) succeeded; an exception rewinds the partition.
    "ack_policy": AckPolicy.NACK_ON_ERROR,
    "auto_offset_reset": "earliest",
}
