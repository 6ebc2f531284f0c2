"""The bench's PNG: throughput over time per stage, the latency distributions, and memory per service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402

from switchboard.bench.stats import rate_series  # noqa: E402

_SERIES = {"accepted": "accepted (intake)", "routed": "routed", "sla": "sla events", "notifier": "notifier events",
           "announced": "announced in Slack"}  # fmt: skip
# The timeline's zero: load starts (or a backlog starts draining) the moment the services are ready.
_ZERO = "the services were ready"
_CURVE_POINTS = 1000


def write_plot(report: dict, latencies: Mapping[str, Sequence[float]], path: Path) -> None:
    """`latencies`: name → seconds, as summarised in the report's `latency` section."""
    panels = 2 + bool(any(latencies.values()))
    figure, axes = plt.subplots(panels, 1, figsize=(10, 3.6 * panels), layout="constrained")
    _throughput(axes[0], report)
    if panels == 3:
        _latency(axes[1], latencies)
    _memory(axes[-1], report["rss_bytes"])
    options = report["options"]
    figure.suptitle(
        f"switchboard bench {report['started_at'][:19]} — n={options['n']}, rate={options['rate'] or 'max'}"
        + (f", only {options['only']}" if options["only"] else "")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _throughput(ax, report: dict) -> None:
    timeline = report["timeline"]
    for key, label in _SERIES.items():
        samples = [(row["t"], row[key]) for row in timeline if key in row]
        if series := rate_series(samples):
            ax.plot([t for t, _ in series], [rate for _, rate in series], label=label)
    raw = report["raw_kafka"]["per_second"]
    ax.set_title(f"throughput (1 s windows); raw aiokafka pass-through {raw:,.0f}/s")
    ax.set_xlabel(f"seconds since {_ZERO}")
    ax.set_ylabel("per second")
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(alpha=0.3)


def _latency(ax, latencies: Mapping[str, Sequence[float]]) -> None:
    for name, seconds in latencies.items():
        if seconds:
            # The curve at a thousand quantiles looks the same as at a million points, and draws at once.
            fractions = numpy.linspace(0, 1, min(len(seconds), _CURVE_POINTS))
            ax.plot(numpy.quantile(numpy.asarray(seconds) * 1000, fractions), fractions, label=name.replace("_", " "))
    ax.set_title("latency distribution (cumulative)")
    ax.set_xlabel("milliseconds")
    ax.set_ylabel("fraction of tickets")
    ax.set_xscale("symlog", linthresh=10)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)


def _memory(ax, samples: list[dict]) -> None:
    labels = sorted({label for sample in samples for label in sample["services"]})
    for label in labels:
        points = [(s["t"], s["services"][label] / 2**20) for s in samples if s["services"].get(label)]
        ax.plot([t for t, _ in points], [mib for _, mib in points], marker="o", label=label)
    ax.set_title("resident memory (start, every 10% of progress, end)")
    ax.set_xlabel(f"seconds since {_ZERO}")
    ax.set_ylabel("MiB")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
