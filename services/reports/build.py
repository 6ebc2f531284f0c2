"""A report from the log: the tickets topic read from its beginning and folded (services/reports/figures.py)."""

from __future__ import annotations

import asyncio
import logging

from pydantic import ValidationError

from services.reports.figures import Report, ReportFold, Window
from shared.calendars import ALWAYS_OPEN_ID, Calendar
from shared.config import DeskConfig
from shared.events import TicketCreated
from shared.log_reader import TopicLog
from shared.topics import TICKETS, Topics

logger = logging.getLogger(__name__)


def fold_for(config: DeskConfig) -> ReportFold:
    """A fold whose business times count on the calendars of `config`'s SLA policies (a policy since removed
    from the config: calendar time)."""
    policies = {policy.id: policy for policy in config.sla_policies}

    def calendar_of(policy_id: str, metric: str) -> Calendar:
        policy = policies.get(policy_id)
        return config.calendar(policy.calendar_of(metric) if policy else ALWAYS_OPEN_ID)  # type: ignore[arg-type]

    def default_policy(created: TicketCreated) -> str:
        return config.sla_policy_for(
            priority=created.priority,
            channel=created.channel,
            team=created.team,
            category=created.category,
            contact_tags=created.contact_tags,
        ).id

    return ReportFold(calendar_of, default_policy)


async def build_report(bootstrap: str, topics: Topics, config: DeskConfig, window: Window) -> Report:
    """The report of `window` from the tickets topic as it is now (events from `window.until` on are left
    out: the report is the log as of then). Invalid records are skipped with a warning, as replay does."""
    fold = fold_for(config)
    adapter = TICKETS.adapter()
    async with TopicLog(bootstrap, topics.name(TICKETS)) as log:
        async for record in log:
            try:
                event = adapter.validate_json(record.value)
            except ValidationError:
                logger.warning(
                    "skipped an invalid event", extra={"partition": record.partition, "offset": record.offset}
                )
                continue
            if event.occurred_at < window.until:
                fold.add(event)
    # Business-time arithmetic over the whole log: off the event loop, which the SLA service's timers share.
    return await asyncio.to_thread(fold.figures, window)
