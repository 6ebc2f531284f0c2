"""Group commit for Redis: the commands of concurrent deliveries go out together, one pipeline at a time.

A batch submits hundreds of deliveries at once, and each reads and writes the ledger a few times
(its intent, its card, its record); one round trip each would cost far more CPU (a task, a timeout
and a socket write per command) than the commands themselves. Here each caller queues its commands;
whoever gets the turn sends everything queued meanwhile as one pipeline and hands each caller its
own results. A caller waits at most for the pipeline in flight and then its own, and sees the state
of a moment after it queued (its commands are sent after that), as with a plain round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

Queue = Callable[[Pipeline], Awaitable[None] | None]


@dataclass
class _Waiting:
    queue: Queue
    answer: asyncio.Future[list[Any]]


class GroupPipeline:
    def __init__(self, redis: Redis, *, transaction: bool = False):
        """`transaction`: each pipeline runs as one MULTI/EXEC (so each caller's commands are applied together)."""
        self.redis = redis
        self.transaction = transaction
        self._waiting: list[_Waiting] = []
        # What `share` names among the waiting (not sent yet).
        self._shared: dict[Hashable, _Waiting] = {}
        self._turn = asyncio.Lock()

    async def execute(self, queue: Queue, *, scripts: Sequence[AsyncScript] = (), share: Hashable = None) -> list[Any]:
        """Runs the commands `queue(pipe)` adds (it may be a coroutine) and returns their results in order. A
        command's error (e.g. WRONGTYPE) is raised here, to its caller alone; a lost connection to every caller
        of that pipeline. `scripts`: the Lua scripts it runs by SHA (`pipe.evalsha`), loaded when Redis lacks
        them (first use, a restart). `share`: callers queuing the same reads may name them alike; those queued
        for the same pipeline share its one answer."""
        try:
            return await self._execute(queue, share)
        except NoScriptError:
            for script in scripts:
                await self.redis.script_load(script.script)
            return await self._execute(queue, share)

    async def run_script(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """Runs a Lua script (registered with `Redis.register_script`) in the next pipeline; its answer."""
        [answer] = await self.execute(lambda pipe: pipe.evalsha(script.sha, len(keys), *keys, *args), scripts=[script])
        return answer

    async def _execute(self, queue: Queue, share: Hashable) -> list[Any]:
        if share is not None and (queued := self._shared.get(share)) is not None:
            waiting = queued
        else:
            waiting = _Waiting(queue, asyncio.get_running_loop().create_future())
            self._waiting.append(waiting)
            if share is not None:
                self._shared[share] = waiting
        try:
            async with self._turn:
                if not waiting.answer.done():
                    batch, self._waiting = [w for w in self._waiting if not w.answer.done()], []
                    self._shared.clear()
                    await self._send(batch)
        except asyncio.CancelledError:
            # Not sent yet: it never will be. (Sent: its outcome is not wanted any more.)
            if share is None and not waiting.answer.cancel() and not waiting.answer.cancelled():
                waiting.answer.exception()
            raise
        results = waiting.answer.result()
        if error := next((result for result in results if isinstance(result, Exception)), None):
            raise error
        return results

    async def _send(self, batch: list[_Waiting]) -> None:
        try:
            async with self.redis.pipeline(transaction=self.transaction) as pipe:
                bounds = []
                for waiting in batch:
                    start = len(pipe.command_stack)
                    if (queued := waiting.queue(pipe)) is not None:
                        await queued
                    bounds.append((start, len(pipe.command_stack)))
                results = await pipe.execute(raise_on_error=False)
        except BaseException as error:
            # The others were not cancelled: to them it is a lost connection (their commands are retried).
            lost = (
                RedisConnectionError("the pipeline's sender was cancelled")
                if isinstance(error, asyncio.CancelledError)
                else error
            )
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(lost)
            raise
        for waiting, (start, end) in zip(batch, bounds, strict=True):
            waiting.answer.set_result(results[start:end])
