"""`switchboard up`: local infrastructure (unless external) and every service as a child process."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import click

from shared.config import load_config
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from switchboard.infra import LocalInfra, recorded_infra, start_infra
from switchboard.processes import die_with_parent_hook, stop_processes
from switchboard.services import SERVICES

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 60


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def create_topics(settings: Settings, bootstrap: str) -> None:
    asyncio.run(ensure_topics(bootstrap, Topics(settings.topic_prefix)))


def _api_token(settings: Settings) -> str:
    if settings.api_token:
        return settings.api_token.get_secret_value()
    token_file = settings.data_dir / "api-token"
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(24))
        token_file.chmod(0o600)
    return token_file.read_text().strip()


def run_stack(settings: Settings) -> int:
    load_config(settings.config)  # a broken config stops us before anything starts
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())

    owned_infra: LocalInfra | None = None
    children: dict[str, subprocess.Popen] = {}
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
        # A mailbox to poll is the user's to name; without one, intake-imap has nothing to do.
        wanted = [service for service in SERVICES if service != "intake-imap" or settings.imap_host]
        ops_ports = {service: free_loopback_port() for service in wanted if service != "intake-http"}
        for service in wanted:
            children[service] = subprocess.Popen(
                [sys.executable, "-m", "switchboard", "run", service],
                env={**env, "SWITCHBOARD_OPS_PORT": str(ops_ports.get(service, 0))},
                stdout=subprocess.DEVNULL,
                stderr=(logs / f"{service}.log").open("ab"),
                start_new_session=True,  # Ctrl-C reaches us alone; we stop the children in order
                preexec_fn=die_with_parent_hook(),
            )
        base_url = f"http://{settings.http_host}:{settings.http_port}"
        if not _wait_until_ready(f"{base_url}/readyz", children, stop_requested):
            failed = [name for name, child in children.items() if child.poll() is not None]
            if stop_requested.is_set():
                return 130
            click.echo(
                f"the stack did not become ready; see the logs in {logs} ({', '.join(failed) or 'timeout'})", err=True
            )
            return 1
        click.echo(
            "\n".join(
                [
                    "Switchboard is up.",
                    f"  customer page  {base_url}/",
                    f"  customer form  POST {base_url}/v1/forms/contact",
                    f"  support email  smtp://{settings.smtp_host}:{settings.smtp_port}",
                    f"  read API       GET  {base_url}/v1/tickets/{{id}}   (Authorization: Bearer {api_token})",
                    f"  health         {base_url}/healthz  {base_url}/readyz  {base_url}/metrics",
                    *(
                        f"  {service:<14} http://{settings.http_host}:{port}/readyz  …/metrics"
                        for service, port in ops_ports.items()
                    ),
                    f"  kafka          {bootstrap}",
                    f"  redis          {redis_url}",
                    f"  slack api      {settings.slack_api_url}"
                    + ("" if settings.slack_bot_token else "  (no token: posts are logged)"),
                    f"  logs           {logs}",
                    "Press Ctrl-C to stop.",
                ]
            ),
            nl=True,
        )
        while not stop_requested.wait(0.5):
            exited = [name for name, child in children.items() if child.poll() is not None]
            if exited:
                click.echo(f"{', '.join(exited)} exited; stopping (see {logs})", err=True)
                return 1
        return 0
    finally:
        click.echo("stopping …")
        stop_processes(list(children.values()), timeout=20)
        if owned_infra is not None:
            owned_infra.stop()
        click.echo("stopped")


def _wait_until_ready(url: str, children: dict[str, subprocess.Popen], stop: threading.Event) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not stop.is_set():
        if any(child.poll() is not None for child in children.values()):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        stop.wait(0.25)
    return False
