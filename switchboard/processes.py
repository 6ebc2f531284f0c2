"""Child processes that never outlive the command that started them."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from shared.logs import JsonFormatter

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn making the child receive SIGTERM when its parent dies, even by SIGKILL (Linux).

    The kernel ties this to the spawning thread: spawn from a thread that lives as long as the children.
    """
    if not sys.platform.startswith("linux"):
        logger.warning("child processes cannot be tied to this one on %s; stop them yourself", sys.platform)
        return None
    # Resolved in the parent: between fork and exec the child should do as little as possible.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent_pid = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        # Had the parent died before prctl, the signal would never come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return die_with_parent


def stop_processes(processes: Sequence[subprocess.Popen], timeout: float) -> None:
    """SIGTERM all at once, then SIGKILL whatever is still running after `timeout` seconds."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class SupervisedProcess:
    """One instance of a service that `switchboard up` keeps running.

    Every start uses the same command, environment and log file (stderr, appended to). What the
    supervisor does to it goes to the same file, as JSON lines of the logger `switchboard.supervisor`.
    """

    def __init__(self, name: str, command: Sequence[str], env: dict[str, str], log_file: Path, ready_url: str):
        self.name = name
        self.command = list(command)
        self.env = env
        self.log_file = log_file
        self.ready_url = ready_url
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0  # monotonic seconds
        self.log = logging.getLogger(f"switchboard.supervisor.{name}")
        self.log.propagate = False
        self._log_handler = logging.FileHandler(log_file)
        self._log_handler.setFormatter(JsonFormatter(name))
        self.log.handlers[:] = [self._log_handler]

    def start(self, now: float, extra_env: dict[str, str] | None = None) -> None:
        """Spawns it in its own session, so that Ctrl-C reaches `up` alone, which stops the children in order.

        Call from a thread that lives as long as the process: see die_with_parent_hook.
        """
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env={**self.env, **(extra_env or {})},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
                preexec_fn=die_with_parent_hook(),
            )
        self.started_at = now

    def exit_code(self) -> int | None:
        """Popen.returncode once the process exited (negative: killed by that signal), else None."""
        return None if self.process is None else self.process.poll()

    def answers_ready(self) -> bool:
        """Whether its /readyz answers 200 now (1 s timeout)."""
        try:
            with urllib.request.urlopen(self.ready_url, timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def close_log(self) -> None:
        self.log.removeHandler(self._log_handler)
        self._log_handler.close()
