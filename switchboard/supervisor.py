"""What `switchboard up` decides about its child processes, with no I/O: how many instances of each
service, how a process ended, when to restart it and when to give up.

Times are seconds on a monotonic clock, passed in by the caller.
"""

from __future__ import annotations

import re
import signal
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Services that hold something only one process can have; why, in the operator's terms.
SINGLE_INSTANCE = {
    "intake-http": (
        "it binds the one HTTP port (SWITCHBOARD_HTTP_PORT); for more, run `switchboard run intake-http` "
        "on other ports behind a load balancer"
    ),
    "intake-smtp": "it binds the one SMTP port (SWITCHBOARD_SMTP_PORT)",
    "intake-imap": "it polls one mailbox, and a second poller would only fetch the same mail again",
}


class ScaleError(ValueError):
    """A `--scale` value that cannot be honoured; the message names the item and why."""


def parse_scale(values: Iterable[str], services: Sequence[str]) -> dict[str, int]:
    """`["router=2,notifier=2", "sla=3"]` → `{"router": 2, "notifier": 2, "sla": 3}`.

    Raises ScaleError for an item that is not SERVICE=COUNT, an unknown service, a count below 1,
    more than one instance of a SINGLE_INSTANCE service, or one service given two different counts.
    """
    scale: dict[str, int] = {}
    for item in (part.strip() for value in values for part in value.split(",")):
        if not item:
            continue
        service, equals, count_text = (text.strip() for text in item.partition("="))
        if not equals or not re.fullmatch(r"-?\d+", count_text):
            raise ScaleError(f"{item!r}: expected SERVICE=COUNT, e.g. router=2")
        if service not in services:
            raise ScaleError(f"{item!r}: unknown service {service!r}; one of {', '.join(services)}")
        count = int(count_text)
        if count < 1:
            raise ScaleError(f"{item!r}: at least 1 instance (`up` runs every service)")
        if count > 1 and service in SINGLE_INSTANCE:
            raise ScaleError(f"{item!r}: {service} runs once, because {SINGLE_INSTANCE[service]}")
        if scale.get(service, count) != count:
            raise ScaleError(f"{item!r}: {service} was already given {scale[service]}")
        scale[service] = count
    return scale


def instance_names(service: str, count: int) -> list[str]:
    """`router`, or `router-1` … `router-N` when there are several (their log files take these names)."""
    return [service] if count == 1 else [f"{service}-{number}" for number in range(1, count + 1)]


def describe_exit(returncode: int) -> str:
    """A Popen returncode in words: `exit code 1`, or `signal SIGKILL` for a negative one (subprocess docs)."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"signal {-returncode}"


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff between restarts, reset by a healthy run, and what counts as a crash loop."""

    first_delay: float = 0.5  # seconds before restarting after a healthy run
    max_delay: float = 30.0  # the delay doubles with every quick exit, up to this
    healthy_after: float = 30.0  # a run at least this long was healthy: the next delay is first_delay again
    max_restarts: int = 5  # an exit after this many restarts within `window` seconds is a crash loop
    window: float = 60.0


@dataclass(frozen=True)
class Restart:
    number: int  # how many times this instance has been restarted, this restart included
    delay: float  # seconds from the exit to the restart
    at: float  # when to start it again


@dataclass(frozen=True)
class CrashLoop:
    exits: int  # exits within `window`, the last one included
    window: float


class RestartHistory:
    """One instance's exits under a RestartPolicy: each exit is answered with a Restart or a CrashLoop."""

    def __init__(self, policy: RestartPolicy):
        self.policy = policy
        self.restarts = 0
        self._next_delay = policy.first_delay
        self._recent_exits: deque[float] = deque()

    def exited(self, *, started_at: float, now: float) -> Restart | CrashLoop:
        """The process started at `started_at` exited at `now`."""
        policy = self.policy
        if now - started_at >= policy.healthy_after:
            self._next_delay = policy.first_delay
        self._recent_exits.append(now)
        while now - self._recent_exits[0] > policy.window:
            self._recent_exits.popleft()
        if len(self._recent_exits) > policy.max_restarts:
            return CrashLoop(exits=len(self._recent_exits), window=policy.window)
        delay = self._next_delay
        self._next_delay = min(policy.max_delay, delay * 2)
        self.restarts += 1
        return Restart(number=self.restarts, delay=delay, at=now + delay)
