"""`switchboard`: one command for every process and every operator task (SPEC §2)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from shared.config import ConfigError, DeskConfig, load_config
from shared.settings import ChannelOff, MissingInfrastructure, Settings
from switchboard.reports_cli import export, report
from switchboard.services import SERVICES
from switchboard.sla_cli import sla


@click.group()
def main() -> None:
    """Switchboard: omnichannel help-desk intake and routing on Kafka."""


def _scale_option(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, int]:
    from switchboard.supervisor import ScaleError, parse_scale

    try:
        return parse_scale(values, SERVICES)
    except ScaleError as error:
        raise click.BadParameter(str(error)) from None


@main.command()
@click.option(
    "--scale",
    "scale",
    multiple=True,
    callback=_scale_option,
    metavar="SERVICE=N[,SERVICE=N…]",
    help="Run N instances of a service, e.g. router=2,notifier=2 (each with its own ops port and log).",
)
def up(scale: dict[str, int]) -> None:
    """Run the whole stack on this machine until Ctrl-C; a service that exits is restarted."""
    from switchboard.infra import MissingTool
    from switchboard.stack import run_stack

    settings = Settings()
    if "intake-imap" in scale and not settings.imap_host:
        raise click.BadParameter("intake-imap runs only with SWITCHBOARD_IMAP_HOST set", param_hint="'--scale'")
    try:
        sys.exit(run_stack(settings, scale))
    except (MissingTool, ConfigError) as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.argument("service", type=click.Choice(SERVICES))
def run(service: str) -> None:
    """Run one service in this process."""
    from switchboard.services import run_service

    try:
        run_service(service, Settings())
    except (MissingInfrastructure, ConfigError, ChannelOff) as error:
        raise click.ClickException(str(error)) from None


@main.group()
def infra() -> None:
    """The local Kafka broker and Redis server alone."""


@infra.command("up")
def infra_up() -> None:
    """Start local Kafka and Redis in the background (they keep running after this command)."""
    from switchboard.infra import MissingTool, recorded_infra, start_infra
    from switchboard.stack import create_topics

    settings = Settings()
    if (running := recorded_infra(settings.data_dir)) is not None:
        click.echo(f"already running: kafka {running['kafka_bootstrap']}, redis {running['redis_url']}")
        return
    try:
        local = start_infra(settings.data_dir, detached=True)
    except MissingTool as error:
        raise click.ClickException(str(error)) from None
    create_topics(settings, local.endpoints.kafka_bootstrap)
    click.echo(f"kafka {local.endpoints.kafka_bootstrap}")
    click.echo(f"redis {local.endpoints.redis_url}")


@infra.command("fetch")
def infra_fetch() -> None:
    """Download the Kafka broker's jars from Maven Central now (they are cached under DATA_DIR)."""
    from switchboard.infra import MissingTool, kafka_jars

    try:
        click.echo(f"kafka jars in {kafka_jars(Settings().data_dir)}")
    except MissingTool as error:
        raise click.ClickException(str(error)) from None


@infra.command("down")
def infra_down() -> None:
    """Stop the local Kafka and Redis."""
    from switchboard.infra import stop_recorded_infra

    click.echo("stopped" if stop_recorded_infra(Settings().data_dir) else "not running")


@infra.command("status")
def infra_status() -> None:
    """Say whether the local Kafka and Redis are running, and where."""
    from switchboard.infra import recorded_infra

    running = recorded_infra(Settings().data_dir)
    if running is None:
        click.echo("stopped")
        return
    click.echo(f"running: kafka {running['kafka_bootstrap']}, redis {running['redis_url']}")


@main.group()
def config() -> None:
    """The YAML configuration."""


def _config_or_exit(path: Path) -> DeskConfig:
    """The config at `path`, or every problem on stderr and exit status 1."""
    try:
        return load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            click.echo(problem, err=True)
        sys.exit(1)


@config.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def config_check(file: Path | None) -> None:
    """Validate FILE (default: SWITCHBOARD_CONFIG, else the example config)."""
    path = file or Settings().config
    desk = _config_or_exit(path)
    click.echo(
        f"{path}: ok — {len(desk.teams)} team(s), {len(desk.agents)} agent(s), "
        f"{len(desk.sla_policies)} SLA polic{'y' if len(desk.sla_policies) == 1 else 'ies'}"
    )


@main.group()
def route() -> None:
    """The router's decisions, explained."""


@route.command("explain")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="Default: SWITCHBOARD_CONFIG.")
def route_explain(file: Path, config_file: Path | None) -> None:
    """How the router would classify FILE (an inbound message as JSON, or a .eml): detected language and
    flags, each rule and why it fired or not, and the ticket's team, category, priority, tags and skills.
    Nothing is published or stored."""
    from rich.console import Console

    from switchboard.explain import NotAMessage, identity_owners, message_from_file, owner_tags, print_explanation

    path = config_file or Settings().config
    desk = _config_or_exit(path)
    try:
        message = message_from_file(file, desk)
    except NotAMessage as error:
        raise click.ClickException(str(error)) from None
    # The running stack's Redis (recorded under DATA_DIR) when none is named, as `ticket show` finds it.
    settings = Settings().with_recorded_infra()
    owners = asyncio.run(identity_owners(message, settings))
    tags = asyncio.run(owner_tags(message, owners, settings))
    print_explanation(message, desk, Console(), owners=owners, contact_tags=tags)


@main.group()
def ticket() -> None:
    """Look at tickets and work them (the same commands as the Slack card's buttons)."""


@ticket.command("show")
@click.argument("ticket_id")
def ticket_show(ticket_id: str) -> None:
    """Print a ticket from the read model as JSON: status, priority, tags, assignee, CSAT, messages and
    its history (the audit trail)."""
    _print_from_read_model(lambda read_model: read_model.ticket(ticket_id), f"no ticket {ticket_id}")


def _print_from_read_model(lookup: Callable[[Any], Awaitable[dict | None]], missing: str) -> None:
    """Prints what `lookup` (given the ReadModel) finds as JSON, or fails with `missing`."""
    from shared.read_model import ReadModel
    from shared.redis_client import connect_redis

    async def show() -> dict | None:
        _, redis_url = Settings().require_infra()
        redis = connect_redis(redis_url)
        try:
            return await lookup(ReadModel(redis))
        finally:
            await redis.aclose()

    try:
        found = asyncio.run(show())
    except MissingInfrastructure as error:
        raise click.ClickException(str(error)) from None
    if found is None:
        raise click.ClickException(missing)
    click.echo(json.dumps(found, indent=2, ensure_ascii=False))


@ticket.command("new")
@click.option("--channel", type=click.Choice(["phone"]), required=True, help="What the ticket logs: a phone call.")
@click.option("--name", help="The caller's name.")
@click.option("--phone", help="The caller's phone number, international (+34 600 123 456).")
@click.option("--email", help="The caller's email address (replies go there).")
@click.option("--summary", required=True, help="What the call was about.")
@click.option("--direction", type=click.Choice(["inbound", "outbound"]), default="inbound", show_default=True)
@click.option("--duration", type=click.IntRange(min=0), help="How long the call took, in whole minutes.")
@click.option("--agent", default="admin", show_default=True, help="The agent ID who took the call.")
def ticket_new(
    channel: str,
    name: str | None,
    phone: str | None,
    email: str | None,
    summary: str,
    direction: str,
    duration: int | None,
    agent: str,
) -> None:
    """Log a phone call as a new ticket (as `/sb call` in Slack): routed and timed like any other; replies
    go to the caller's email, else their WhatsApp. Give --phone or --email (or both)."""
    from datetime import UTC

    from services.intake.phone_calls import CallInvalid, read_call
    from switchboard.commands import log_phone_call

    settings = Settings()
    try:
        call = read_call(
            summary=summary,
            agent_id=agent,
            logged_at=datetime.now(UTC),
            name=name,
            phone=phone,
            email=email,
            direction=direction,
            duration=duration,
        )
        ticket_id = asyncio.run(log_phone_call(settings, call))
    except CallInvalid as invalid:
        raise click.UsageError("; ".join(f"--{field}: {why}" for field, why in invalid.errors.items())) from None
    except (MissingInfrastructure, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{channel} call logged as {ticket_id}")


@ticket.command("reply")
@click.argument("ticket_id")
@click.argument("text")
@click.option("--agent", default="admin", show_default=True, help="The agent ID the reply is sent as.")
def ticket_reply(ticket_id: str, text: str, agent: str) -> None:
    """Send TEXT to the ticket's customer, on the channel they wrote from."""
    from shared.events import AgentReply

    _send_command(AgentReply, ticket_id, agent, "reply", text=text)


_AGENT_OPTION = click.option("--agent", default="admin", show_default=True, help="The agent ID acting.")


@ticket.command("note")
@click.argument("ticket_id")
@click.argument("text")
@_AGENT_OPTION
def ticket_note(ticket_id: str, text: str, agent: str) -> None:
    """Add an internal note (never sent to the customer)."""
    from shared.events import AgentNote

    _send_command(AgentNote, ticket_id, agent, "note", text=text)


@ticket.command("claim")
@click.argument("ticket_id")
@click.option("--agent", required=True, help="The agent ID who takes the ticket.")
def ticket_claim(ticket_id: str, agent: str) -> None:
    """Make AGENT the ticket's assignee."""
    from shared.events import ClaimTicket

    _send_command(ClaimTicket, ticket_id, agent, "claim")


@ticket.command("assign")
@click.argument("ticket_id")
@click.option("--to-agent", help="Hand the ticket to this agent ID.")
@click.option("--to-team", help="Put the ticket, unassigned, in this team's queue.")
@_AGENT_OPTION
def ticket_assign(ticket_id: str, to_agent: str | None, to_team: str | None, agent: str) -> None:
    """Hand the ticket on to an agent or a team's queue (one of --to-agent and --to-team)."""
    from shared.events import AssignTicket

    if (to_agent is None) == (to_team is None):
        raise click.UsageError("give exactly one of --to-agent and --to-team")
    _send_command(AssignTicket, ticket_id, agent, "assignment", to_agent=to_agent, to_team=to_team)


@ticket.command("status")
@click.argument("ticket_id")
@click.argument("status", type=click.Choice(["open", "pending", "on_hold", "solved", "closed"]))
@click.option("--reason", help="Why, for the ticket's history.")
@_AGENT_OPTION
def ticket_status(ticket_id: str, status: str, reason: str | None, agent: str) -> None:
    """Move the ticket to STATUS (solved → open reopens it; closed is final)."""
    from shared.events import SetStatus

    _send_command(SetStatus, ticket_id, agent, "status change", status=status, reason=reason)


@ticket.command("priority")
@click.argument("ticket_id")
@click.argument("priority", type=click.Choice(["low", "normal", "high", "urgent"]))
@_AGENT_OPTION
def ticket_priority(ticket_id: str, priority: str, agent: str) -> None:
    """Set the ticket's priority."""
    from shared.events import SetPriority

    _send_command(SetPriority, ticket_id, agent, "priority change", priority=priority)


@ticket.command("tag")
@click.argument("ticket_id")
@click.option("--add", "add", multiple=True, help="A tag to add (repeatable).")
@click.option("--remove", "remove", multiple=True, help="A tag to remove (repeatable).")
@_AGENT_OPTION
def ticket_tag(ticket_id: str, add: tuple[str, ...], remove: tuple[str, ...], agent: str) -> None:
    """Add and remove tags."""
    from shared.events import TagTicket

    if not add and not remove:
        raise click.UsageError("give --add or --remove")
    _send_command(TagTicket, ticket_id, agent, "tag change", add=list(add), remove=list(remove))


@ticket.command("escalate")
@click.argument("ticket_id")
@click.option("--reason", help="Why, for the ticket's history.")
@_AGENT_OPTION
def ticket_escalate(ticket_id: str, reason: str | None, agent: str) -> None:
    """Hand the ticket to the next level of its team's escalation chain."""
    from shared.events import EscalateTicket

    _send_command(EscalateTicket, ticket_id, agent, "escalation", reason=reason)


@ticket.command("merge")
@click.argument("ticket_id")
@click.argument("into")
@_AGENT_OPTION
def ticket_merge(ticket_id: str, into: str, agent: str) -> None:
    """Merge TICKET_ID into INTO: TICKET_ID is closed, INTO carries on."""
    from shared.events import MergeTicket

    _send_command(MergeTicket, ticket_id, agent, "merge", into_ticket_id=into)


def _send_command(kind: type, ticket_id: str, agent: str, what: str, **fields: Any) -> None:
    """Publishes the command; the router applies or refuses it (see `switchboard ticket show`)."""
    from pydantic import ValidationError

    from switchboard.commands import send_command

    try:
        command_id = asyncio.run(send_command(Settings(), kind, ticket_id, agent, **fields))
    except (MissingInfrastructure, LookupError) as error:
        raise click.ClickException(str(error)) from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'command'}: {e['msg']}" for e in error.errors())
        raise click.ClickException(problems) from None
    click.echo(f"{what} queued for {ticket_id} (command {command_id})")


@main.group()
def contact() -> None:
    """Look at contacts, merge or unmerge them (the same as a merge suggestion's buttons in Slack), tag them."""


@contact.command("show")
@click.argument("contact_id")
def contact_show(contact_id: str) -> None:
    """Print a contact from the read model as JSON: a merged contact shows its survivor, with the identities
    (and which are verified) and tickets of every contact merged into it."""
    _print_from_read_model(lambda read_model: read_model.contact(contact_id), f"no contact {contact_id}")


@contact.command("merge")
@click.argument("survivor")
@click.argument("merged")
@_AGENT_OPTION
def contact_merge(survivor: str, merged: str, agent: str) -> None:
    """Merge contact MERGED into SURVIVOR: lookups of MERGED, its identities and its tickets show SURVIVOR.
    Undone by `switchboard contact unmerge MERGED`."""
    _send_contact_command(agent, merged, survivor, f"merge of {merged} into {survivor}")


@contact.command("unmerge")
@click.argument("merged")
@_AGENT_OPTION
def contact_unmerge(merged: str, agent: str) -> None:
    """Undo the merge of contact MERGED: its identities and tickets are its own again."""
    _send_contact_command(agent, merged, None, f"unmerge of {merged}")


@contact.command("tag")
@click.argument("contact_id")
@click.option("--add", "add", multiple=True, help="A tag to add (repeatable).")
@click.option("--remove", "remove", multiple=True, help="A tag to remove (repeatable).")
@_AGENT_OPTION
def contact_tag(contact_id: str, add: tuple[str, ...], remove: tuple[str, ...], agent: str) -> None:
    """Add and remove tags of contact CONTACT_ID (lower-case words; a merged contact: its survivor's).
    Classification rules (`contact_tag`) and SLA policies (`when: {contact_tag: [...]}`) match them on the
    contact's new tickets."""
    if not add and not remove:
        raise click.UsageError("give --add or --remove")
    _send_contact_command(agent, contact_id, None, f"tag change of {contact_id}", tags=(list(add), list(remove)))


def _send_contact_command(
    agent: str, contact_id: str, into: str | None, what: str, tags: tuple[list[str], list[str]] | None = None
) -> None:
    from pydantic import ValidationError

    from switchboard.commands import send_contact_command

    try:
        command_id = asyncio.run(send_contact_command(Settings(), agent, contact_id, into, tags=tags))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'command'}: {e['msg']}" for e in error.errors())
        raise click.ClickException(problems) from None
    except (MissingInfrastructure, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{what} queued (command {command_id})")


@main.group()
def quarantine() -> None:
    """Messages kept aside instead of reaching a ticket (machine mail for no ticket, loops, spam)."""


def _quarantine_call(call):
    """Runs `call(Quarantine)` against the stack's Redis."""
    from shared.quarantine import Quarantine
    from shared.redis_client import connect_redis

    async def run():
        _, redis_url = Settings().require_infra()
        redis = connect_redis(redis_url)
        try:
            return await call(Quarantine(redis))
        finally:
            await redis.aclose()

    try:
        return asyncio.run(run())
    except MissingInfrastructure as error:
        raise click.ClickException(str(error)) from None


@quarantine.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--channel", help="Only this channel (email, form, chat, telegram, slack, wecom).")
@click.option("--reason", help="Only this reason code (machine_mail_no_ticket, own_mail_loop, spam_honeypot, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print the full events as a JSON array.")
def quarantine_list(limit: int, channel: str | None, reason: str | None, as_json: bool) -> None:
    """List quarantined messages, newest first."""
    found = _quarantine_call(lambda kept: kept.list(limit=limit, channel=channel, reason_code=reason))
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    for entry in found:
        sender = entry["sender"].get("email") or entry["sender"].get("name") or "-"
        click.echo(
            f"{entry['occurred_at']}  {entry['message_id']}  {entry['channel']}  {entry['reason_code']}  "
            f"{sender}  {entry['subject'] or '(no subject)'}"
        )
    if not found:
        click.echo("nothing in quarantine", err=True)


@quarantine.command("release")
@click.argument("message_id", type=click.UUID)
@click.option("--actor", default="admin", show_default=True, help="Who releases it (an agent ID), for the record.")
def quarantine_release(message_id, actor: str) -> None:
    """Release a message judged spam into its ticket: it is published as the customer sent it.

    Released before: nothing is published again, and the ticket it went to is printed.
    """
    from services.intake.release import NotReleasable, release

    try:
        released = asyncio.run(_with_intake(lambda intake: release(intake, message_id, actor)))
    except (MissingInfrastructure, NotReleasable) as error:
        raise click.ClickException(str(error)) from None
    if released.now:
        click.echo(f"released {message_id} into {released.ticket_id}")
    else:
        click.echo(f"{message_id} was released before (by {released.actor}) into {released.ticket_id}")


async def _with_intake(call):
    """Runs `call(Intake)` with a producer and Redis of the stack's, as intake-http has them."""
    from prometheus_client import CollectorRegistry

    from services.intake.core import Intake
    from shared.publisher import Publisher
    from shared.redis_client import connect_redis

    settings = Settings()
    bootstrap, redis_url = settings.require_infra()
    redis = connect_redis(redis_url)
    publisher = Publisher(bootstrap, client_id="switchboard-cli", registry=CollectorRegistry())
    await publisher.start()
    try:
        return await call(Intake(publisher, redis, load_config(settings.config), settings))
    finally:
        await publisher.stop()
        await redis.aclose()


@quarantine.command("show")
@click.argument("message_id")
@click.option("--original", is_flag=True, help="Print the message exactly as received (e.g. the .eml) instead.")
def quarantine_show(message_id: str, original: bool) -> None:
    """Print one quarantined message as JSON, with its reason."""
    found = _quarantine_call(lambda kept: kept.get(message_id))
    if found is None:
        raise click.ClickException(f"no quarantined message {message_id}")
    if not original:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    from shared.attachments import AttachmentStore
    from shared.events import Attachment

    if found["original"] is None:
        raise click.ClickException(f"{message_id} has no original")
    store = AttachmentStore(Settings().data_dir / "attachments")
    try:
        content = store.read(Attachment.model_validate(found["original"]))
    except FileNotFoundError:
        raise click.ClickException(f"the original of {message_id} is not under this DATA_DIR") from None
    sys.stdout.buffer.write(content)


@main.group()
def telegram() -> None:
    """The Telegram bot."""


@telegram.command("set-webhook")
@click.argument("url")
def telegram_set_webhook(url: str) -> None:
    """Tell Telegram to deliver updates to URL (your public https://…/v1/telegram/webhook) with the secret."""
    from shared.telegram_bot import telegram_bot

    settings = Settings()
    if not (settings.telegram_bot_token and settings.telegram_webhook_secret):
        raise click.ClickException("set SWITCHBOARD_TELEGRAM_BOT_TOKEN and SWITCHBOARD_TELEGRAM_WEBHOOK_SECRET first")

    async def register() -> None:
        async with telegram_bot(settings) as bot:
            await bot.set_webhook(url, secret_token=settings.telegram_webhook_secret.get_secret_value())

    asyncio.run(register())
    click.echo(f"Telegram now delivers updates to {url}")


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/asyncapi"), show_default=True)
def docs(out: Path) -> None:
    """Write the AsyncAPI document of every Kafka consumer (router, sla, notifier), generated from the code."""
    from switchboard.asyncapi import write_asyncapi

    for path in write_asyncapi(Settings(), out):
        click.echo(path)


def _instances(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, int]:
    from switchboard.bench.options import parse_instances

    try:
        return parse_instances(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@main.command()
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Messages: forms posted, or the backlog pre-filled for --only router|sla|notifier (tickets for sla/notifier).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Offered forms per second; 0 posts as fast as intake-http answers.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop offering forms (or waiting for a backlog to drain) after SECONDS, even before --n.",
)
@click.option(
    "--only",
    type=click.Choice(["intake", "router", "sla", "notifier"]),
    default=None,
    help="One stage alone: intake takes forms; router, sla and notifier drain a pre-filled backlog.",
)
@click.option(
    "--instances",
    callback=_instances,
    default=None,
    metavar="STAGE=N,…",
    help="Instances per stage, e.g. router=2,notifier=2 (default 1 each).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the JSON report goes (default DATA_DIR/bench/bench-TIMESTAMP.json); the PNG goes beside it.",
)
@click.option("--start", is_flag=True, help="Start a private Kafka and Redis even when a stack is running.")
@click.option(
    "--grace",
    type=click.FloatRange(min=1),
    default=30,
    show_default=True,
    help="Stop waiting once nothing has moved for SECONDS; what has not arrived then counts as missing.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Forms in flight at most (HTTP connections).",
)
@click.option(
    "--flood",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also post N forms from one outside client (203.0.113.7 via X-Forwarded-For), "
    "which the config's form rate limit answers 429; the run's own forms are measured meanwhile.",
)
@click.option(
    "--flood-rate",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="The flood's forms per second; 0 posts them as fast as intake-http answers.",
)
def bench(**given: object) -> None:
    """Measure throughput, latency and memory of the pipeline on this machine (SPEC §6).

    The services run as child processes on private topics, with a built-in fake Slack, on the running
    stack's Kafka and Redis (or a private pair with --start, or when none runs).
    """
    from rich.console import Console

    from switchboard.bench.infra import bench_infra
    from switchboard.bench.options import BenchOptions
    from switchboard.bench.plot import write_plot
    from switchboard.bench.report import build_report, default_report_path, print_summary, write_report
    from switchboard.bench.runner import run_bench
    from switchboard.bench.services import ServiceFailed
    from switchboard.infra import MissingTool

    try:
        options = BenchOptions(**given)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    settings = Settings()
    console = Console(stderr=True)
    json_path = options.json_path or default_report_path(settings.data_dir, datetime.now())
    log_dir = json_path.with_name(f"{json_path.stem}-logs")
    try:
        with bench_infra(settings, start=options.start) as infra:
            measured, latencies = asyncio.run(run_bench(options, settings, infra, console, log_dir))
    except (MissingTool, ConfigError, ServiceFailed) as error:
        raise click.ClickException(str(error)) from None
    report = build_report(measured) | {"logs": str(log_dir)}
    write_report(report, json_path)
    write_plot(report, latencies, json_path.with_suffix(".png"))
    print_summary(report, Console())
    click.echo(f"report {json_path}\nplot   {json_path.with_suffix('.png')}\nlogs   {log_dir}")


@main.command()
def replay() -> None:
    """Rebuild every Redis projection from Kafka (safe while the stack runs: intake and consumers wait)."""
    from rich.console import Console
    from rich.progress import Progress as Bars
    from rich.table import Table

    from shared.redis_client import connect_redis
    from switchboard.replay import AVAILABILITY_CHANGES, ReplayReport, replay_all

    settings = Settings()
    try:
        bootstrap, redis_url = settings.require_infra()
    except MissingInfrastructure as error:
        raise click.ClickException(str(error)) from None
    try:
        # SLA clocks and auto-close timers are decided again under the config's policies, as the live service does.
        config = load_config(settings.config)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    console = Console()

    async def run(bars: Bars) -> ReplayReport:
        tasks: dict[str, Any] = {}

        def progress(topic: str, done: int, total: int) -> None:
            if topic not in tasks:
                tasks[topic] = bars.add_task(topic, total=max(total, 1))
            bars.update(tasks[topic], completed=done if total else 1)

        redis = connect_redis(redis_url)
        try:
            return await replay_all(bootstrap, redis, settings.topic_prefix, progress, config=config)
        finally:
            await redis.aclose()

    with Bars(console=console) as bars:
        report = asyncio.run(run(bars))
    table = Table("rebuilt", "count", title="switchboard replay")
    for family, count in sorted(report.counts.items()):
        table.add_row(family, f"{count:,}")
    for prefix, last in sorted(report.counters.items()):
        table.add_row(f"ticket IDs {prefix}", f"new ones after {prefix}-{last}")
    if report.skipped:
        table.add_row("invalid records skipped", f"{report.skipped:,}")
    console.print(table)
    click.echo(f"replayed {report.counts['ticket events']} ticket events")
    click.echo(f"replayed {report.counts['quarantined messages']} quarantined messages")
    click.echo(f"replayed {report.counts[AVAILABILITY_CHANGES]} agent availability changes")
    click.echo("the state is restored: intake and consumers go on")


main.add_command(sla)
main.add_command(report)
main.add_command(export)
