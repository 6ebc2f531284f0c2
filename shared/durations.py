"""Durations as the config writes them: '90s', '30m', '4h', '2d'."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: Any) -> Any:
    """'90s', '30m', '4h', '2d' → timedelta; other values are left for pydantic to judge."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        amount, unit = match.groups()
        return timedelta(**{_DURATION_UNITS[unit]: float(amount)})
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def spoken(duration: timedelta) -> str:
    """'4 days', '1 day', '36 hours', '90 seconds': the largest unit that counts the duration exactly."""
    seconds = round(duration.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "0 seconds"
