"""The arithmetic of a bench report: latency percentiles and rates from counters sampled over time (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy

PERCENTILES = (50, 95, 99)


def latency_summary(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50/p95/p99, mean and max in milliseconds (linear interpolation between ranks, numpy's default).

    Every figure but the count is None when there is nothing to summarise.
    """
    if not seconds:
        return {"count": 0, **{f"p{q}_ms": None for q in PERCENTILES}, "mean_ms": None, "max_ms": None}
    values = numpy.asarray(seconds, dtype=float) * 1000
    p = numpy.percentile(values, PERCENTILES)
    return {
        "count": len(values),
        **{f"p{q}_ms": round(float(value), 3) for q, value in zip(PERCENTILES, p, strict=True)},
        "mean_ms": round(float(values.mean()), 3),
        "max_ms": round(float(values.max()), 3),
    }


@dataclass(frozen=True)
class Rate:
    """`count` items done in `seconds` of activity."""

    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, float | int]:
        return {"count": self.count, "seconds": round(self.seconds, 3), "per_second": round(self.per_second, 1)}


def active_rate(samples: Sequence[tuple[float, int]]) -> Rate:
    """The rate of a counter sampled as (time, value), over the time it was moving.

    The clock starts at the last sample before the counter first moved and stops at the first sample
    showing its final value, so start-up before the first item and idling after the last one do not
    count, while the work between two samples is never left out (the rate errs low by at most one
    sampling interval).
    """
    if not samples:
        return Rate(0, 0.0)
    baseline, final = samples[0][1], samples[-1][1]
    if final <= baseline:
        return Rate(0, 0.0)
    first_move = next(index for index, (_, value) in enumerate(samples) if value != baseline)
    started = samples[first_move - 1][0]
    finished = next(t for t, value in samples if value == final)
    return Rate(final - baseline, finished - started)


def rate_series(samples: Sequence[tuple[float, int]], window: float = 1.0) -> list[tuple[float, float]]:
    """(time, items per second over the preceding `window` seconds) at each sample at least `window` in."""
    series = []
    back = 0
    for t, value in samples:
        while back + 1 < len(samples) and samples[back + 1][0] <= t - window:
            back += 1
        t0, v0 = samples[back]
        if t - t0 >= window:
            series.append((t, (value - v0) / (t - t0)))
    return series


def tenths(fraction: float) -> int:
    """Whole tenths of progress reached (0 … 10): 0.299 → 2, 1.0 → 10; beyond 1 counts as done."""
    return max(0, min(10, int(fraction * 10 + 1e-9)))
