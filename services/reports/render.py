"""A report as text (rich tables), JSON, CSV and a PNG chart (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from rich.console import Console
from rich.table import Table

from services.reports.figures import AGE_BUCKETS, BACKLOG_STATUSES, Report


def duration(seconds: float | None) -> str:
    """'2h 05m', '3d 4h', '45s', '—' for none: short enough for a table cell."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def share(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def tables(report: Report) -> list[Table]:
    """The report as rich tables, in reading order."""
    title = f"{report.since:%Y-%m-%d %H:%M} – {report.until:%Y-%m-%d %H:%M} UTC" + (
        f", team {report.team}" if report.team else ""
    )
    tickets = Table(title=f"Tickets created ({report.tickets['created']}), {title}")
    for column in ("By", "Value", "Tickets"):
        tickets.add_column(column)
    for by in ("channel", "category", "team"):
        for value, count in report.tickets[f"by_{by}"].items():
            tickets.add_row(by, value, str(count))

    times = Table(title="Response and resolution times")
    for column in ("Metric", "Count", "Median", "p90", "Median (business)", "p90 (business)"):
        times.add_column(column)
    for metric, kinds in report.times.items():
        calendar, business = kinds["calendar"], kinds["business"]
        times.add_row(
            metric.replace("_", " "),
            str(calendar["count"]),
            duration(calendar["median"]),
            duration(calendar["p90"]),
            duration(business["median"]),
            duration(business["p90"]),
        )

    backlog = Table(title="Backlog at the end of each day")
    for column in ("Day", "Total", *BACKLOG_STATUSES, *(label for label, _ in AGE_BUCKETS)):
        backlog.add_column(column)
    for day in report.backlog:
        backlog.add_row(
            day["day"],
            str(day["total"]),
            *(str(day["by_status"][status]) for status in BACKLOG_STATUSES),
            *(str(day["by_age"][label]) for label, _ in AGE_BUCKETS),
        )

    sla = Table(title="SLA compliance (met ÷ due)")
    for column in ("Policy", "Metric", "Met", "Due", "Compliance"):
        sla.add_column(column)
    for row in report.sla:
        sla.add_row(row["policy"], row["metric"], str(row["met"]), str(row["due"]), share(row["compliance"]))

    csat = report.csat
    agents = Table(
        title=f"Agents — CSAT {share(csat['share'])} of {csat['count']} rated; deflections {report.deflections}"
    )
    for column in ("Agent", "Solved", "First responses", "First response (median)", "Resolution (median)", "CSAT"):
        agents.add_column(column)
    for row in report.agents:
        agents.add_row(
            row["agent"],
            str(row["solved"]),
            str(row["first_responses"]),
            duration(row["first_response_median"]),
            duration(row["resolution_median"]),
            f"{share(row['csat']['share'])} of {row['csat']['count']}",
        )
    return [tickets, times, backlog, sla, agents]


def as_text(report: Report, width: int = 120) -> str:
    """The tables as plain text (no colour codes), e.g. for a Slack code block."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    for table in tables(report):
        console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def as_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)


def csv_rows(report: Report) -> Iterator[tuple[str, str, str, Any]]:
    """(section, name, figure, value): every figure of the report as one row."""
    for by in ("channel", "category", "team"):
        for value, count in report.tickets[f"by_{by}"].items():
            yield "tickets", f"{by}:{value}", "created", count
    yield "tickets", "all", "created", report.tickets["created"]
    for metric, kinds in report.times.items():
        for kind, summary in kinds.items():
            for figure, value in summary.items():
                yield "times", f"{metric}:{kind}", figure, value
    for day in report.backlog:
        yield "backlog", day["day"], "total", day["total"]
        for status, count in day["by_status"].items():
            yield "backlog", day["day"], f"status:{status}", count
        for label, count in day["by_age"].items():
            yield "backlog", day["day"], f"age:{label}", count
    for row in report.sla:
        for figure in ("met", "due", "compliance"):
            yield "sla", f"{row['policy']}:{row['metric']}", figure, row[figure]
    for figure, value in report.csat.items():
        yield "csat", "all", figure, value
    for row in report.agents:
        for figure in ("solved", "first_responses", "first_response_median", "resolution_median"):
            yield "agents", row["agent"], figure, row[figure]
        for figure, value in row["csat"].items():
            yield "agents", row["agent"], f"csat_{figure}", value
    yield "deflections", "all", "solved", report.deflections


def as_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "name", "figure", "value"))
    writer.writerows(("" if value is None else value for value in row) for row in csv_rows(report))
    return out.getvalue()


def plot(report: Report, path: Path | BinaryIO) -> None:
    """A PNG of four panels: tickets by channel, the backlog by status per day, median times (calendar and
    business), SLA compliance per policy and metric."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, ((channels, backlog), (times, sla)) = pyplot.subplots(2, 2, figsize=(12, 8))
    by_channel = report.tickets["by_channel"]
    channels.bar(list(by_channel), list(by_channel.values()), color="#4c72b0")
    channels.set_title(f"Tickets created by channel ({report.tickets['created']})")

    days = [day["day"][5:] for day in report.backlog]
    bottom = [0] * len(days)
    for status in BACKLOG_STATUSES:
        counts = [day["by_status"][status] for day in report.backlog]
        backlog.bar(days, counts, bottom=bottom, label=status)
        bottom = [a + b for a, b in zip(bottom, counts, strict=True)]
    backlog.set_title("Backlog at the end of each day")
    backlog.legend(fontsize="small")

    metrics = list(report.times)
    positions = range(len(metrics))
    hours = {
        kind: [(report.times[metric][kind]["median"] or 0) / 3600 for metric in metrics]
        for kind in ("calendar", "business")
    }
    times.bar([p - 0.2 for p in positions], hours["calendar"], width=0.4, label="calendar")
    times.bar([p + 0.2 for p in positions], hours["business"], width=0.4, label="business")
    times.set_xticks(list(positions), [metric.replace("_", " ") for metric in metrics])
    times.set_ylabel("hours")
    times.set_title("Median times")
    times.legend(fontsize="small")

    labels = [f"{row['policy']}\n{row['metric'].replace('_', ' ')}" for row in report.sla]
    sla.bar(labels, [row["compliance"] * 100 for row in report.sla], color="#55a868")
    sla.set_ylim(0, 100)
    sla.set_ylabel("% met")
    sla.set_title("SLA compliance")
    sla.tick_params(axis="x", labelsize="small")

    figure.suptitle(f"Switchboard {report.since:%Y-%m-%d} – {report.until:%Y-%m-%d}" + (
        f", team {report.team}" if report.team else ""
    ))  # fmt: skip
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=80)
    pyplot.close(figure)
