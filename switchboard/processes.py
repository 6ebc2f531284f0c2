"""Child processes that never outlive the command that started them."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence

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
