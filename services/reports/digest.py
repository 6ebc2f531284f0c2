"""The daily Slack digest of the report (config `reports.digest`), run by the SLA service.

Each day, once the digest's local time has come, one SLA instance claims the day (HSETNX on `sb:reports:digests`,
field: the local day), computes the report of the `since` before the digest time from the log
(services/reports/build.py), posts the tables to the channel as a message and uploads the chart into its thread
(Slack's external upload: `files.getUploadURLExternal`, a POST of the bytes, `files.completeUploadExternal`
with `channel_id`), and records the run as `report.digest_posted` on the reports topic. The claim makes it once
a day across instances and restarts; the event makes it once a day after Redis is lost (`switchboard replay`
restores the claims). A digest whose posting failed gives its claim back and is tried again a minute later;
one whose instance died between claiming and posting is not posted that day.
"""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import UTC, date, datetime, time
from typing import Any

from redis.asyncio import Redis
from slack_sdk.web.async_client import AsyncWebClient

from services.reports.build import build_report
from services.reports.figures import Report, Window
from services.reports.render import as_text, plot
from shared.calendars import zone
from shared.config import DeskConfig
from shared.events import DigestPosted
from shared.ids import derived_id
from shared.publisher import Outgoing, Publisher
from shared.reports_config import Digest
from shared.topics import REPORTS, Topics

logger = logging.getLogger(__name__)

# HASH: local day (ISO date) → when an instance claimed it. Rebuilt by `switchboard replay` from the reports topic.
DIGESTS_KEY = "sb:reports:digests"
# How often a waiting instance looks again (also the retry delay after a failed post).
CHECK_SECONDS = 60.0
# Slack's limit on a message's text is 40,000 characters; the tables are far below it, a code block keeps them.
_TEXT_LIMIT = 39_000


def due_day(digest: Digest, now: datetime) -> date | None:
    """The local day whose digest is due at `now` (its time has come that day), else None."""
    local = now.astimezone(zone(digest.timezone))
    return local.date() if local.hour * 60 + local.minute >= digest.minute_of_day() else None


def digest_time(digest: Digest, day: date) -> datetime:
    """The instant of `day`'s digest (its local time that day)."""
    hours, minutes = divmod(digest.minute_of_day(), 60)
    return datetime.combine(day, time(hours, minutes), zone(digest.timezone))


def window_of(digest: Digest, day: date) -> Window:
    """What `day`'s digest reports: the `since` up to its time, days ending at midnight in its time zone."""
    until = digest_time(digest, day)
    return Window(until - digest.since, until, digest.team, zone(digest.timezone))


def message_text(window: Window, tables: str) -> str:
    team = f", team {window.team}" if window.team else ""
    head = f"*Switchboard report* {window.since:%Y-%m-%d %H:%M} – {window.until:%Y-%m-%d %H:%M} {window.zone}{team}"
    return f"{head}\n```\n{tables[:_TEXT_LIMIT]}\n```"


def posted_event(day: date, window: Window, channel: str, message_ts: str | None, file_id: str | None) -> DigestPosted:
    return DigestPosted(
        event_id=derived_id("report.digest_posted", day, channel, window.team),
        occurred_at=datetime.now(UTC),
        day=day,
        since=window.since,
        until=window.until,
        team=window.team,
        channel=channel,
        message_ts=message_ts,
        file_id=file_id,
    )


class DigestRunner:
    """Posts the day's digest once its time has come (see the module's docstring)."""

    def __init__(
        self,
        digest: Digest,
        config: DeskConfig,
        bootstrap: str,
        topics: Topics,
        redis: Redis,
        publisher: Publisher,
        slack: AsyncWebClient,
    ):
        self.digest = digest
        self.config = config
        self.bootstrap = bootstrap
        self.topics = topics
        self.redis = redis
        self.publisher = publisher
        self.slack = slack

    async def run(self) -> None:
        while True:
            try:
                await self.tick(datetime.now(UTC))
            except Exception:
                logger.exception("report digest failed; tried again later")
            await asyncio.sleep(CHECK_SECONDS)

    async def tick(self, now: datetime) -> DigestPosted | None:
        """Posts the digest due at `now` unless an instance claimed its day; returns what was posted."""
        day = due_day(self.digest, now)
        if day is None or not await self.redis.hsetnx(DIGESTS_KEY, day.isoformat(), now.isoformat()):
            return None
        window = window_of(self.digest, day)
        channel = self.digest.channel
        try:
            report = await build_report(self.bootstrap, self.topics, self.config, window)
            tables = await asyncio.to_thread(as_text, report)
            message = await self.slack.chat_postMessage(channel=channel, text=message_text(window, tables))
        except BaseException:
            # Nothing was posted: the day is free for the next try.
            await self.redis.hdel(DIGESTS_KEY, day.isoformat())
            raise
        # Posted: the day stays claimed whatever fails next, or the next try would post the table again.
        event = await self._complete(day, window, report, message)
        logger.info("report digest posted", extra={"day": day.isoformat(), "channel": channel})
        return event

    async def _complete(self, day: date, window: Window, report: Report, message: Any) -> DigestPosted:
        """Uploads the chart into the posted table's thread and records the post on the reports topic, the
        chart's file or not: the day's claim in Redis must have its event behind it (replay restores it)."""
        channel = self.digest.channel
        file_id = None
        try:
            chart = io.BytesIO()
            await asyncio.to_thread(plot, report, chart)
            upload = await self.slack.files_upload_v2(
                channel=channel,
                file=chart.getvalue(),
                filename=f"switchboard-report-{day.isoformat()}.png",
                title=f"Switchboard report {day.isoformat()}",
                thread_ts=message.get("ts"),
            )
            file_id = (upload.get("file") or {}).get("id")
        finally:
            event = posted_event(day, window, channel, message.get("ts"), file_id)
            await self.publisher.publish(Outgoing.event(self.topics.name(REPORTS), day.isoformat(), event))
        return event


def restore_claims(pipe, events: list[DigestPosted]) -> None:
    """Queues on `pipe` the claims of the days the log says were posted (`switchboard replay`)."""
    for event in events:
        pipe.hset(DIGESTS_KEY, event.day.isoformat(), event.occurred_at.isoformat())
