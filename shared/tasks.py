"""Background work owned by a process's lifespan: started with it, cancelled and awaited with it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

logger = logging.getLogger(__name__)


@asynccontextmanager
async def running(work: Coroutine[Any, Any, None], *, name: str) -> AsyncIterator[asyncio.Task[None]]:
    """Runs `work` while the block runs. Work that dies of an error ends the process (SIGTERM to
    itself), so that its supervisor starts it afresh instead of it serving on half alive."""
    task = asyncio.create_task(work, name=name)
    task.add_done_callback(_exit_if_crashed)
    try:
        yield task
    finally:
        task.remove_done_callback(_exit_if_crashed)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _exit_if_crashed(task: asyncio.Task[None]) -> None:
    if task.cancelled() or task.exception() is None:
        return
    logger.critical("%s crashed; stopping the process", task.get_name(), exc_info=task.exception())
    os.kill(os.getpid(), signal.SIGTERM)
