"""Reading mail (`read_mail`: parsing and classifying) in worker processes, off the event loop.

The SMTP server and the IMAP poller share one event loop with every other connection: a mail that
takes long to read must not stall them. A worker process holds no lock the loop needs (the GIL),
so the loop only awaits the result. Each worker is a one-process pool of its own, so that a read
running past `timeout` can be stopped by ending exactly that process; a fresh worker takes its
place and the mail is refused with `MailNotRead`, which each channel answers in its own terms.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager, suppress

from services.intake.email.reading import MailReading, read_mail

MailReader = Callable[[bytes], MailReading]


class MailNotRead(Exception):
    """Reading a mail did not finish: it ran past the time bound, or its worker process died."""


class MailReadersStopped(Exception):
    """The service is stopping: the mail was not read, and its sender should try again later."""


class MailReaders:
    """`workers` processes reading mail, each read bounded by `timeout` seconds.

    Processes exist only inside `running()`, which the service's lifespan enters.
    """

    def __init__(self, workers: int, timeout: float, read: MailReader = read_mail):
        if workers < 1:
            raise ValueError("at least one worker is needed")
        self.workers = workers
        self.timeout = timeout
        self._read = read  # a module-level function: the worker unpickles it by name
        # Idle workers; None once stopping, passed on from one waiting read to the next.
        self._idle: asyncio.Queue[_Worker | None] | None = None
        self._all: set[_Worker] = set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Starts the worker processes; on exit ends them: reads under way or waiting raise
        `MailReadersStopped`."""
        idle = self._idle = asyncio.Queue()
        try:
            for _ in range(self.workers):
                idle.put_nowait(self._start_worker())
            yield
        finally:
            idle.put_nowait(None)
            for worker in self._all:
                worker.end()
            self._all.clear()
            self._idle = None

    async def read(self, raw: bytes) -> MailReading:
        """The reading of `raw`, waiting for a free worker first.

        Raises what `read_mail` raises (`MailUnreadable`: not mail); `MailNotRead` when the read ran
        past the bound or its worker died (the worker is replaced either way); `MailReadersStopped`
        when the service stops meanwhile.
        """
        if self._idle is None:
            raise RuntimeError("MailReaders.read() called outside running()")
        idle = self._idle
        worker = await idle.get()
        if worker is None:
            idle.put_nowait(None)
            raise MailReadersStopped("the service is stopping")
        job: Future[MailReading] | None = None
        try:
            try:
                job = await worker.submit(self._read, raw)
            except BrokenProcessPool:
                if self._idle is not idle:
                    raise
                # The process died while idle (killed from outside): not this mail's doing.
                worker = self._replace(worker)
                job = await worker.submit(self._read, raw)
            return await asyncio.wait_for(asyncio.wrap_future(job), self.timeout)
        except TimeoutError as error:
            raise MailNotRead(f"reading it took longer than {self.timeout:g} s") from error
        except BrokenProcessPool as error:
            if self._idle is not idle:
                raise MailReadersStopped("the service is stopping") from error
            raise MailNotRead("the process reading it ended abruptly") from error
        except asyncio.CancelledError:
            # Stopping cancels the reads not yet started; a cancellation of this task itself goes on.
            task = asyncio.current_task()
            if self._idle is not idle and not (task is not None and task.cancelling()):
                raise MailReadersStopped("the service is stopping") from None
            raise
        finally:
            if self._idle is idle:  # when stopping, every worker has been ended already
                # A worker whose read did not finish (timed out, or cancelled with its session) or
                # that died is replaced: waiting for it would hold up every mail queued behind it.
                if job is None or not job.done() or job.cancelled() or isinstance(job.exception(), BrokenProcessPool):
                    worker = self._replace(worker)
                idle.put_nowait(worker)

    def _start_worker(self) -> _Worker:
        worker = _Worker()
        self._all.add(worker)
        return worker

    def _replace(self, worker: _Worker) -> _Worker:
        worker.end()
        self._all.discard(worker)
        return self._start_worker()


class _Worker:
    """One worker process, in a pool of its own so that it can be ended without touching the others."""

    def __init__(self) -> None:
        # spawn, not fork: the service runs threads (Kafka client, executor threads) that fork would copy mid-state.
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_end_with_parent
        )
        self._pid = self._pool.submit(os.getpid)  # runs first: the pid is known before any read starts
        self._ended = False

    async def submit(self, read: MailReader, raw: bytes) -> Future[MailReading]:
        """Hands `raw` to the process once it runs: from then on `end` can stop the read."""
        await asyncio.shield(asyncio.wrap_future(self._pid))
        if self._ended:
            raise BrokenProcessPool("the worker was ended")
        return self._pool.submit(read, raw)

    def end(self) -> None:
        """Ends the process now, whatever it is doing."""
        self._ended = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._pid.done() and not self._pid.cancelled() and self._pid.exception() is None:
            with suppress(ProcessLookupError):
                os.kill(self._pid.result(), signal.SIGKILL)


def _end_with_parent() -> None:
    """Worker initializer: exit when the service process is gone, even if it was killed outright.

    A worker waits on its task queue, which it holds both ends of, so it would otherwise never notice.
    """
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_once_ended, args=(parent.sentinel,), daemon=True).start()


def _exit_once_ended(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(0)
