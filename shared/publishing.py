from __future__ import annotations

from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from shared.events import Envelope, kafka_headers


async def publish_keyed(broker: KafkaBroker, topic: str, events: Sequence[Envelope]) -> None:
    """Publish events keyed by ticket ID, in order, each acknowledged before the next is sent."""
    for event in events:
        await broker.publish(
            event,
            topic=topic,
            key=event.ticket_id.encode(),
            headers=kafka_headers(event),
            correlation_id=event.correlation_id,
        )
