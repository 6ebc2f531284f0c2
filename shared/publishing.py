from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from shared.events import Envelope


async def publish_keyed(broker: KafkaBroker, topic: str, events: Sequence[Envelope]) -> None:
    """Publish events keyed by ticket ID, in order, and return once the broker acknowledged all."""
    pending = [
        await broker.publish(
            event,
            topic=topic,
            key=event.ticket_id.encode(),
            headers={"event-type": getattr(event, "type", ""), "event-id": str(event.event_id)},
            correlation_id=event.correlation_id,
            no_confirm=True,
        )
        for event in events
    ]
    await asyncio.gather(*pending)
