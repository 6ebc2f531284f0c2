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
