"""One Lua script called by many concurrent requests, in few round trips.

Calls made while a round trip is under way wait and go together in the next one, as one pipeline of
EVALSHA: under load Redis (and the client's per-command work) sees a batch per round trip instead of
a command per request; alone, a call goes out at once. Redis runs the calls in the order they were made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

# Calls per round trip at most: a burst is sent as several pipelines rather than one huge one.
MAX_CALLS_PER_ROUND_TRIP = 256

_Call = tuple[Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]


class ScriptBatches:
    """`await batches(keys, args)` answers as `redis.register_script(source)(keys, args)` does (the
    script's result; its error reply as ResponseError; RedisError when Redis is unreachable)."""

    def __init__(self, redis: Redis, source: str, *, name: str = "script"):
        self.redis = redis
        self.source = source
        self.sha = redis.register_script(source).sha
        self.name = name
        self._waiting: list[_Call] = []
        # Sends round trips while calls wait, then ends; every call's future gets its outcome.
        self._sender: asyncio.Task[None] | None = None

    async def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((keys, args, outcome))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_while_waiting(), name=f"redis-batches:{self.name}")
        return await outcome

    async def _send_while_waiting(self) -> None:
        try:
            while self._waiting:
                calls = self._waiting[:MAX_CALLS_PER_ROUND_TRIP]
                del self._waiting[:MAX_CALLS_PER_ROUND_TRIP]
                await self._round_trip(calls)
        finally:
            self._sender = None
            # Only when this task itself was cancelled (the loop is closing): nobody is left to send these.
            for _, _, outcome in self._waiting:
                outcome.cancel()
            self._waiting.clear()

    async def _round_trip(self, calls: list[_Call]) -> None:
        try:
            results = await self._evalsha(calls)
            if unknown := [index for index, result in enumerate(results) if isinstance(result, NoScriptError)]:
                # Redis restarted or its scripts were flushed: load it again; those calls did not run.
                await self.redis.script_load(self.source)
                for index, result in zip(
                    unknown, await self._evalsha([calls[index] for index in unknown]), strict=True
                ):
                    results[index] = result
        except Exception as error:
            for _, _, outcome in calls:
                if not outcome.done():
                    outcome.set_exception(error)
            return
        except BaseException:
            for _, _, outcome in calls:
                outcome.cancel()
            raise
        for (_, _, outcome), result in zip(calls, results, strict=True):
            if outcome.done():  # its caller gave up waiting
                continue
            if isinstance(result, Exception):
                outcome.set_exception(result)
            else:
                outcome.set_result(result)

    async def _evalsha(self, calls: list[_Call]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in calls:
                pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)
