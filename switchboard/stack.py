"""`switchboard up`: local infrastructure (unless external) and every service as a child process."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path

import click

from shared.config import load_config
from shared.settings import Settings
from shared.state import ensure_state
from shared.topics import Topics, ensure_topics
from switchboard.infra import LocalInfra, last_lines, recorded_infra, start_infra
from switchboard.processes import SupervisedProcess, stop_processes
from switchboard.services import SERVICES
from switchboard.supervisor import (
    CrashLoop,
    Restart,
    RestartHistory,
    RestartPolicy,
    describe_exit,
    instance_names,
)

logger = logging.getLogger(__name__)

# What a restarted process learns of its restart (shared.settings: restart_count, previous_exit).
RESTART_COUNT_ENV = "SWITCHBOARD_RESTART_COUNT"
PREVIOUS_EXIT_ENV = "SWITCHBOARD_PREVIOUS_EXIT"

READY_TIMEOUT_SECONDS = 60
_POLL_SECONDS = 0.25


def free_loopback_port() -> int:
    return free_loopback_ports(1)[0]


def free_loopback_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 now."""
    with ExitStack() as held:
        # All kept bound until all are picked, so the kernel cannot hand out the same port twice.
        probes = [held.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def create_topics(settings: Settings, bootstrap: str) -> None:
    asyncio.run(ensure_topics(bootstrap, Topics(settings.topic_prefix)))


def restore_state(settings: Settings, bootstrap: str, redis_url: str) -> None:
    """Replays the log into Redis when Redis lost the state (a new, empty Redis): intake refuses until then."""
    from shared.redis_client import connect_redis
    from switchboard.replay import replay_all

    async def restore() -> None:
        redis = connect_redis(redis_url)
        try:
            if not await ensure_state(redis, bootstrap, Topics(settings.topic_prefix)):
                click.echo("Redis holds none of the state the log has; replaying the log …")
                config = load_config(settings.config)
                report = await replay_all(bootstrap, redis, settings.topic_prefix, config=config)
                click.echo(f"replayed: {', '.join(f'{family} {count:,}' for family, count in report.counts.items())}")
        finally:
            await redis.aclose()

    asyncio.run(restore())


def _api_token(settings: Settings) -> str:
    if settings.api_token:
        return settings.api_token.get_secret_value()
    token_file = settings.data_dir / "api-token"
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(24))
        token_file.chmod(0o600)
    return token_file.read_text().strip()


def run_stack(settings: Settings, scale: dict[str, int] | None = None) -> int:
    """Runs the stack until Ctrl-C/SIGTERM (0, or 130 before it was up) or a failure (1): a service that
    exits while starting, or one in a crash loop. `scale` gives instances per service (default 1 each).
    """
    load_config(settings.config)  # a broken config stops us before anything starts
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())

    owned_infra: LocalInfra | None = None
    instances: list[SupervisedProcess] = []
    try:
        if settings.kafka_bootstrap and settings.redis_url:
            bootstrap, redis_url = settings.kafka_bootstrap, settings.redis_url
        elif (running := recorded_infra(settings.data_dir)) is not None:
            bootstrap, redis_url = running["kafka_bootstrap"], running["redis_url"]
        else:
            click.echo("starting local Kafka and Redis …")
            owned_infra = start_infra(settings.data_dir, detached=False)
            bootstrap = owned_infra.endpoints.kafka_bootstrap
            redis_url = owned_infra.endpoints.redis_url
        create_topics(settings, bootstrap)
        restore_state(settings, bootstrap, redis_url)
        api_token = _api_token(settings)
        env = {
            **os.environ,
            "SWITCHBOARD_KAFKA_BOOTSTRAP": bootstrap,
            "SWITCHBOARD_REDIS_URL": redis_url,
            "SWITCHBOARD_API_TOKEN": api_token,
            "SWITCHBOARD_DATA_DIR": str(settings.data_dir),
        }
        logs = settings.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        instances = _instances(settings, scale or {}, env, logs)
        for instance in instances:
            instance.start(time.monotonic())
        if (failure := _wait_until_ready(instances, stop_requested)) is not None:
            if stop_requested.is_set():
                return 130
            click.echo(f"the stack did not become ready: {failure}", err=True)
            return 1
        click.echo(_endpoints(settings, instances, api_token, bootstrap, redis_url, logs))
        return _supervise(instances, RestartPolicy(), stop_requested)
    finally:
        click.echo("stopping …")
        stop_processes([instance.process for instance in instances if instance.process is not None], timeout=20)
        for instance in instances:
            instance.close_log()
        if owned_infra is not None:
            owned_infra.stop()
        click.echo("stopped")


def _endpoints(
    settings: Settings, instances: list[SupervisedProcess], api_token: str, bootstrap: str, redis_url: str, logs: Path
) -> str:
    base_url = f"http://{settings.http_host}:{settings.http_port}"
    return "\n".join(
        [
            "Switchboard is up.",
            f"  customer page  {base_url}/",
            f"  customer form  POST {base_url}/v1/forms/contact",
            f"  support email  smtp://{settings.smtp_host}:{settings.smtp_port}",
            f"  read API       GET  {base_url}/v1/tickets/{{id}}   (Authorization: Bearer {api_token})",
            f"  health         {base_url}/healthz  {base_url}/readyz  {base_url}/metrics",
            *(
                f"  {instance.name:<14} {instance.ready_url}  …/metrics"
                for instance in instances
                if instance.name != "intake-http"
            ),
            f"  kafka          {bootstrap}",
            f"  redis          {redis_url}",
            f"  slack api      {settings.slack_api_url}"
            + ("" if settings.slack_bot_token else "  (no token: posts are logged)"),
            f"  logs           {logs}",
            "Press Ctrl-C to stop.",
        ]
    )


def _instances(settings: Settings, scale: dict[str, int], env: dict[str, str], logs: Path) -> list[SupervisedProcess]:
    """Every instance of every service this machine runs, each with its own ops port and log file."""
    # A mailbox to poll is the user's to name; without one, intake-imap has nothing to do.
    wanted = [service for service in SERVICES if service != "intake-imap" or settings.imap_host]
    names = [(service, name) for service in wanted for name in instance_names(service, scale.get(service, 1))]
    ops_ports = iter(free_loopback_ports(len(names)))
    instances = []
    for service, name in names:
        port = settings.http_port if service == "intake-http" else next(ops_ports)
        instances.append(
            SupervisedProcess(
                name,
                [sys.executable, "-m", "switchboard", "run", service],
                {**env, "SWITCHBOARD_OPS_PORT": str(port)},
                logs / f"{name}.log",
                ready_url=f"http://{settings.http_host}:{port}/readyz",
            )
        )
    return instances


def _wait_until_ready(instances: list[SupervisedProcess], stop: threading.Event) -> str | None:
    """None once every instance answers /readyz, else why not (an exit, the timeout or a stop request)."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    waiting = list(instances)
    while waiting:
        for instance in instances:
            if (code := instance.exit_code()) is not None:
                return (
                    f"{instance.name} exited ({describe_exit(code)}) while starting; "
                    f"last lines of {instance.log_file}:\n{last_lines(instance.log_file)}"
                )
        waiting = [instance for instance in waiting if not instance.answers_ready()]
        if waiting and time.monotonic() > deadline:
            names = ", ".join(instance.name for instance in waiting)
            return f"{names} not ready within {READY_TIMEOUT_SECONDS} s; see {waiting[0].log_file.parent}"
        if waiting and stop.wait(_POLL_SECONDS):
            return "stop requested"
    return None


def _supervise(instances: list[SupervisedProcess], policy: RestartPolicy, stop: threading.Event) -> int:
    """Restarts every instance that exits, as `policy` says, until a stop request (0) or a crash loop (1)."""
    histories = {instance.name: RestartHistory(policy) for instance in instances}
    scheduled: dict[str, tuple[Restart, str]] = {}  # exited, to be started again: name → (restart, how it exited)
    coming_back: dict[str, int] = {}  # restarted, not yet ready: name → restart number
    while not stop.wait(_POLL_SECONDS):
        now = time.monotonic()
        for instance in instances:
            name = instance.name
            if name in scheduled:
                restart, how = scheduled[name]
                if now >= restart.at:
                    del scheduled[name]
                    instance.start(now, {RESTART_COUNT_ENV: str(restart.number), PREVIOUS_EXIT_ENV: how})
                    instance.log.warning("restarted", extra={"restart": restart.number, "pid": instance.process.pid})
                    coming_back[name] = restart.number
            elif (code := instance.exit_code()) is not None:
                ran = now - instance.started_at
                decision = histories[name].exited(started_at=instance.started_at, now=now)
                if isinstance(decision, CrashLoop):
                    _report_crash_loop(instance, decision, describe_exit(code))
                    return 1
                _report_exit(instance, decision, describe_exit(code), ran)
                scheduled[name] = (decision, describe_exit(code))
                coming_back.pop(name, None)
            elif name in coming_back and instance.answers_ready():
                click.echo(f"{name} is back (restart {coming_back.pop(name)}): {instance.ready_url}")
    return 0


def _report_exit(instance: SupervisedProcess, restart: Restart, how: str, ran: float) -> None:
    back_at = (datetime.now() + timedelta(seconds=restart.delay)).strftime("%H:%M:%S")
    instance.log.warning(
        f"exited ({how}) after {ran:.1f} s; restart {restart.number} in {restart.delay:g} s",
        extra={"previous_exit": how, "restart": restart.number, "delay_seconds": restart.delay},
    )
    click.echo(
        f"{instance.name} exited ({how}) after {ran:.0f} s; "
        f"restart {restart.number} at {back_at} (in {restart.delay:g} s)"
    )


def _report_crash_loop(instance: SupervisedProcess, loop: CrashLoop, how: str) -> None:
    message = f"exited {loop.exits} times within {loop.window:g} s (last: {how}): a crash loop"
    instance.log.error(message)
    click.echo(
        f"{instance.name} {message}; stopping everything. Last lines of {instance.log_file}:\n"
        f"{last_lines(instance.log_file)}",
        err=True,
    )
