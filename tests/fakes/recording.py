"""What the fake APIs share: a record of every call they answered, which tests read and wait on,
and the lifecycle of the HTTP server that answers them."""

from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from starlette.routing import Route

from tests.fakes.http_server import ThreadedHttpServer

_WAIT_POLL_SECONDS = 0.05


class RecordedCall(Protocol):
    """What the waits need to know of a recorded call."""

    @property
    def method(self) -> str: ...

    @property
    def ok(self) -> bool: ...


CallT = TypeVar("CallT", bound=RecordedCall)


class RecordingFakeApi(ABC, Generic[CallT]):
    """A fake API on a loopback HTTP server that records each call it answers as a `CallT`.

    Subclasses answer on the routes they pass in and, with ``self._state`` held, :meth:`_record`
    each call with its answer.
    """

    def __init__(self, server_name: str, routes: list[Route]) -> None:
        # One Condition guards all mutable state, the subclass's too: the server thread
        # writes it, tests read it from their own threads and wait on it.
        self._state = threading.Condition()
        self._calls: list[CallT] = []
        self._http = ThreadedHttpServer(server_name, routes)

    @abstractmethod
    def _describe(self, call: CallT) -> str:
        """One line on `call` and its answer, for the message of a wait that fell short."""

    def _is_call_to(self, call: CallT, method: str) -> bool:
        return call.method == method

    def _record(self, call: CallT) -> None:
        """Add `call` to the record and wake the waits; the caller holds ``self._state``."""
        self._calls.append(call)
        self._state.notify_all()

    # --- lifecycle -----------------------------------------------------------

    @property
    def _origin(self) -> str:
        if self._http.port is None:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return f"http://127.0.0.1:{self._http.port}"

    def start(self) -> Self:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what the fake received ------------------------------------------------

    @property
    def calls(self) -> list[CallT]:
        with self._state:
            return list(self._calls)

    def calls_to(self, method: str) -> list[CallT]:
        with self._state:
            return [call for call in self._calls if self._is_call_to(call, method)]

    async def wait_for_calls(
        self,
        method: str,
        count: int = 1,
        timeout: float = 20,
        predicate: Callable[[CallT], bool] | None = None,
    ) -> list[CallT]:
        """Wait until at least `count` successful calls to `method` match `predicate`.

        Polls rather than blocking on the Condition so that the caller's event
        loop stays free and cancelling the wait takes effect at once.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._state:
                matching = self._successful_calls(method, predicate)
                if len(matching) >= count:
                    return matching
                if time.monotonic() >= deadline:
                    raise AssertionError(self._shortfall_message(method, count, timeout, predicate))
            await asyncio.sleep(_WAIT_POLL_SECONDS)

    def wait_for_calls_sync(
        self,
        method: str,
        count: int = 1,
        timeout: float = 20,
        predicate: Callable[[CallT], bool] | None = None,
    ) -> list[CallT]:
        """Blocking form of :meth:`wait_for_calls`."""
        with self._state:
            enough = self._state.wait_for(lambda: len(self._successful_calls(method, predicate)) >= count, timeout)
            if not enough:
                raise AssertionError(self._shortfall_message(method, count, timeout, predicate))
            return self._successful_calls(method, predicate)

    def _successful_calls(self, method: str, predicate: Callable[[CallT], bool] | None) -> list[CallT]:
        return [
            call
            for call in self._calls
            if self._is_call_to(call, method) and call.ok and (predicate is None or predicate(call))
        ]

    def _shortfall_message(
        self,
        method: str,
        count: int,
        timeout: float,
        predicate: Callable[[CallT], bool] | None,
    ) -> str:
        matching = " matching the predicate" if predicate is not None else ""
        received = "\n".join(f"  {self._describe(call)}" for call in self._calls)
        return (
            f"expected at least {count} successful {method} call(s){matching} "
            f"within {timeout}s, got {len(self._successful_calls(method, predicate))}; "
            f"calls received:\n{received or '  (none)'}"
        )
