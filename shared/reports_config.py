"""The `reports` section of the config: the scheduled Slack digest of `switchboard report` (README "Reports and
export")."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared import calendars
from shared.durations import Duration


class Digest(BaseModel):
    """Each day at `time` (local to `timezone`), the report of the `since` before then is posted to the Slack
    `channel` with its chart, once across restarts and SLA service instances."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str = Field(pattern=r"^[CG][A-Z0-9]{2,}$")
    time: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "UTC"
    since: Duration = Field(default=timedelta(days=7), gt=timedelta(0))
    # Only this team's tickets (None: every team).
    team: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, timezone: str) -> str:
        calendars.zone(timezone)
        return timezone

    def minute_of_day(self) -> int:
        hours, minutes = self.time.split(":")
        return int(hours) * 60 + int(minutes)


class Reports(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    digest: Digest | None = None
