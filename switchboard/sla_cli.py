"""`switchboard sla`: a ticket's clocks, and due instants on a calendar (issue #12, item 6)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import click
from rich.console import Console
from rich.table import Table

from services.sla.decide import ticket_sla_adapter
from services.sla.show import clock_rows
from shared.calendars import NoOpenTime
from shared.config import ConfigError, load_config
from shared.settings import MissingInfrastructure, Settings
from shared.sla_policies import BusinessDays, parse_target


@click.group()
def sla() -> None:
    """SLA clocks and calendars."""


@sla.command("show")
@click.argument("ticket_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def sla_show(ticket_id: str, as_json: bool) -> None:
    """Print every clock of a ticket: target, due, used, remaining, paused time and state."""
    from services.sla.timers import clocks_key
    from shared.redis_client import connect_redis

    settings = Settings()

    async def stored() -> bytes | None:
        _, redis_url = settings.require_infra()
        redis = connect_redis(redis_url)
        try:
            return await redis.get(clocks_key(ticket_id))
        finally:
            await redis.aclose()

    try:
        config = load_config(settings.config)
        raw = asyncio.run(stored())
    except (ConfigError, MissingInfrastructure) as error:
        raise click.ClickException(str(error)) from None
    if raw is None:
        raise click.ClickException(
            f"no SLA clocks for {ticket_id} (unknown, closed, or created before the SLA service ran)"
        )
    state = ticket_sla_adapter.validate_json(raw)
    rows = clock_rows(state, config, datetime.now().astimezone())
    if as_json:
        click.echo(json.dumps({"ticket_id": ticket_id, "policy": state.policy, "clocks": rows}, indent=2))
        return
    table = Table(title=f"{ticket_id} — policy {state.policy}, priority {state.priority}")
    for column in ("clock", "state", "target", "due", "used", "remaining", "paused"):
        # A narrow terminal folds a cell onto more lines rather than cutting a due instant short.
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            *(
                str(row[key] if row[key] is not None else "—")
                for key in ("metric", "state", "target", "due", "used", "remaining", "paused")
            )
        )
    Console().print(table)


@sla.command("due")
@click.argument("calendar_id")
@click.argument("start")
@click.argument("duration")
def sla_due(calendar_id: str, start: str, duration: str) -> None:
    """Print the instant (ISO 8601, in START's offset) at which DURATION of open time on CALENDAR_ID has
    passed since START (ISO 8601 with an offset): 90s, 30m, 4h as open time; 2d as two business days."""
    try:
        config = load_config(Settings().config)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    try:
        began = datetime.fromisoformat(start)
    except ValueError:
        raise click.BadParameter(f"{start!r} is no ISO 8601 instant", param_hint="START") from None
    if began.tzinfo is None:
        raise click.BadParameter("give the offset, e.g. 2026-12-01T09:00:00+01:00", param_hint="START")
    try:
        length = parse_target(duration)
    except ValueError:
        raise click.BadParameter(f"{duration!r}: use 90s, 30m, 4h or 2d", param_hint="DURATION") from None
    try:
        calendar = config.calendar(calendar_id)
    except KeyError:
        raise click.BadParameter(f"no calendar {calendar_id!r} in the config", param_hint="CALENDAR_ID") from None
    try:
        if isinstance(length, BusinessDays):
            due = calendar.add_business_days(began, length.days)
        else:
            due = calendar.add_business_time(began, length)
    except NoOpenTime as error:
        raise click.ClickException(str(error)) from None
    # In the offset the start was given in.
    click.echo(due.astimezone(began.tzinfo).isoformat())
