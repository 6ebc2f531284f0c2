"""The services under test, each a `switchboard run NAME` child process, and their memory and CPU time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from switchboard.processes import die_with_parent_hook, stop_processes
from switchboard.stack import free_loopback_port

READY_TIMEOUT_SECONDS = 90
_LOG_TAIL_BYTES = 3000


class ServiceFailed(RuntimeError):
    """A service under test exited or never became ready; the message quotes its log."""


@dataclass
class Service:
    label: str  # "router-2"
    name: str  # "router"
    port: int  # intake-http's HTTP port, or a consumer's ops port
    process: subprocess.Popen
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int | None:
        """Resident memory in bytes, children included (None once the process is gone)."""
        try:
            process = psutil.Process(self.process.pid)
            return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
        except psutil.Error:
            return None

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) in seconds, children included (None once the process is gone)."""
        return cpu_seconds(self.process.pid, children=True)

    def log_tail(self) -> str:
        try:
            with self.log.open("rb") as log:
                log.seek(max(0, self.log.stat().st_size - _LOG_TAIL_BYTES))
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no log)"


class BenchServices:
    """Starts and stops the processes of one run; `env` carries the SWITCHBOARD_* settings they share."""

    def __init__(self, env: dict[str, str], log_dir: Path, watched: Mapping[str, int] | None = None):
        """`watched`: other processes whose CPU time is read with the services' (label → pid: Kafka, Redis)."""
        self.env = env
        self.log_dir = log_dir
        self.watched = dict(watched or {})
        self.running: list[Service] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, label: str) -> Service:
        port = free_loopback_port()
        # Each service's own port: intake-http serves on HTTP_PORT, the consumers their ops routes on OPS_PORT.
        env = {**self.env, "SWITCHBOARD_HTTP_PORT": str(port), "SWITCHBOARD_OPS_PORT": str(port)}
        log = self.log_dir / f"{label}.log"
        with log.open("ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "switchboard", "run", name],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                start_new_session=True,  # a terminal's Ctrl-C reaches the bench, which stops them in order
                preexec_fn=die_with_parent_hook(),
            )
        service = Service(label, name, port, process, log)
        self.running.append(service)
        return service

    async def wait_ready(self, services: list[Service]) -> None:
        """Until every one answers 200 on /readyz (real Kafka and Redis round trips)."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            waiting = list(services)
            while waiting:
                self.check_alive()
                if time.monotonic() > deadline:
                    labels = ", ".join(service.label for service in waiting)
                    raise ServiceFailed(f"{labels} not ready after {READY_TIMEOUT_SECONDS}s:\n{waiting[0].log_tail()}")
                waiting = [service for service in waiting if not await _ready(session, service)]
                if waiting:
                    await asyncio.sleep(0.2)

    def check_alive(self) -> None:
        for service in self.running:
            if (code := service.process.poll()) is not None:
                raise ServiceFailed(
                    f"{service.label} exited with code {code}; end of {service.log}:\n{service.log_tail()}"
                )

    def rss(self) -> dict[str, int | None]:
        return {service.label: service.rss() for service in self.running}

    def cpu_seconds(self) -> dict[str, float | None]:
        """CPU seconds so far of each service, each watched process, and the bench itself ("bench": the load
        generator and the fake Slack)."""
        return {
            **{service.label: service.cpu_seconds() for service in self.running},
            **{label: cpu_seconds(pid) for label, pid in self.watched.items()},
            "bench": cpu_seconds(os.getpid()),
        }

    def stop_all(self) -> None:
        stop_processes([service.process for service in self.running], timeout=20)


def cpu_seconds(pid: int, *, children: bool = False) -> float | None:
    """User + system CPU seconds of a process (and of its live descendants with `children`); None when gone."""
    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)] if children else [process]
        return sum(times.user + times.system for times in (member.cpu_times() for member in family))
    except psutil.Error:
        return None


async def _ready(session: aiohttp.ClientSession, service: Service) -> bool:
    try:
        async with session.get(f"{service.base_url}/readyz") as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False
