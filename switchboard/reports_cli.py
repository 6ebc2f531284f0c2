"""`switchboard report` and `switchboard export`: figures and exports computed from the Kafka log alone."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import click

from shared.config import ConfigError, load_config
from shared.durations import parse_duration
from shared.settings import MissingInfrastructure, Settings


def parse_instant(text: str, zone: str, *, until: datetime | None = None) -> datetime:
    """`text` as an aware instant: a duration before `until` ("7d", "36h"), or an ISO date or date-time (one
    without an offset is in `zone`). Errors: click.BadParameter."""
    if until is not None and isinstance(duration := parse_duration(text), timedelta):
        return until - duration
    tz = _zone(zone)
    try:
        at = datetime.fromisoformat(text)
    except ValueError as error:
        raise click.BadParameter(f"{text!r}: give a duration (7d, 36h) or an ISO date or date-time ({error})") from None
    return at if at.tzinfo else at.replace(tzinfo=tz)


def _infra(settings: Settings) -> str:
    try:
        bootstrap, _ = settings.require_infra()
    except MissingInfrastructure as error:
        raise click.ClickException(str(error)) from None
    return bootstrap


_SINCE_HELP = "A duration before --until (7d, 36h) or an ISO date or date-time."
_UNTIL_HELP = "An ISO date or date-time; default: now."
_ZONE_HELP = "The time zone of days (the backlog's day ends) and of dates given without an offset."


@click.command("report")
@click.option("--since", default="7d", show_default=True, help=_SINCE_HELP)
@click.option("--until", "until_text", help=_UNTIL_HELP)
@click.option("--team", help="Only this team's tickets.")
@click.option("--timezone", "zone", default="UTC", show_default=True, help=_ZONE_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Also draw the figures to this PNG.")
def report(since: str, until_text: str | None, team: str | None, zone: str, fmt: str, plot: Path | None) -> None:
    """Tickets, response and resolution times, backlog, SLA compliance, CSAT, agents and deflections, read
    from the tickets topic alone (Redis is not consulted: the same numbers after `switchboard replay`)."""
    from services.reports.build import build_report
    from services.reports.figures import Window
    from services.reports.render import as_csv, as_json, tables
    from services.reports.render import plot as draw

    settings = Settings()
    bootstrap = _infra(settings)
    try:
        config = load_config(settings.config)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    if team is not None and team not in {known.id for known in config.teams}:
        raise click.BadParameter(f"no team {team!r} in the config", param_hint="--team")
    until = parse_instant(until_text, zone) if until_text else datetime.now(UTC)
    window = Window(parse_instant(since, zone, until=until), until, team, _zone(zone))
    if window.since >= window.until:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    figures = asyncio.run(build_report(bootstrap, _topics(settings), config, window))
    if fmt == "json":
        click.echo(as_json(figures))
    elif fmt == "csv":
        click.echo(as_csv(figures), nl=False)
    else:
        from rich.console import Console

        console = Console()
        for table in tables(figures):
            console.print(table)
    if plot is not None:
        draw(figures, plot)
        click.echo(f"chart written to {plot}", err=True)


def _zone(name: str):
    from shared.calendars import zone

    try:
        return zone(name)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--timezone") from None


def _topics(settings: Settings):
    from shared.topics import Topics

    return Topics(settings.topic_prefix)


@click.command("export")
@click.option("--since", help=_SINCE_HELP + " Default: the log's beginning.")
@click.option("--until", "until_text", help=_UNTIL_HELP)
@click.option("--timezone", "zone", default="UTC", show_default=True, help="The time zone of dates without an offset.")
@click.option(
    "--kind",
    type=click.Choice(["events", "tickets", "messages"]),
    default="events",
    show_default=True,
    help="Every ticket event, each ticket as opened, or every message on a ticket.",
)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here; default: standard output.")
def export(since: str | None, until_text: str | None, zone: str, kind: str, fmt: str, out: Path | None) -> None:
    """Stream tickets, messages or events from the tickets topic, record by record, with a progress bar
    (on standard error)."""
    settings = Settings()
    bootstrap = _infra(settings)
    until = parse_instant(until_text, zone) if until_text else None
    start = parse_instant(since, zone, until=until or datetime.now(UTC)) if since else None
    target: IO[str] = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        written = asyncio.run(_export(bootstrap, settings, kind, fmt, start, until, target))
    finally:
        if out:
            target.close()
    click.echo(f"exported {written} {kind}" + (f" to {out}" if out else ""), err=True)


async def _export(
    bootstrap: str,
    settings: Settings,
    kind: str,
    fmt: str,
    since: datetime | None,
    until: datetime | None,
    target: IO[str],
) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from services.reports.export import export_lines
    from shared.log_reader import TopicLog
    from shared.topics import TICKETS

    written = 0
    async with TopicLog(bootstrap, _topics(settings).name(TICKETS)) as log:
        with Progress(console=Console(stderr=True), transient=True) as bars:
            task = bars.add_task(f"export {kind}", total=max(log.total, 1))

            async def values():
                async for record in log:
                    bars.advance(task)
                    yield record.value

            async for line in export_lines(values(), kind, fmt, since, until):  # type: ignore[arg-type]
                target.write(line)
                written += 1
    # Less the header (CSV's column names; nothing for JSON lines).
    return written - 1
