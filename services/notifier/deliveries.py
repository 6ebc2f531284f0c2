"""Making deliveries: concurrently across tickets and targets, in order within each, never twice.

- Order: deliveries of one ticket to one target (its announcement, then the posts in its thread)
  run one after the other; everything else runs concurrently, up to `concurrency` calls (and
  ledger reads and writes) at once.
- Rate limits: a target that answers "slow down" (`RateLimited`: Slack's HTTP 429 with
  Retry-After) is held for that long; the plain posts that pile up meanwhile go out as ONE digest
  message when the hold ends (where the transport can make one), the rest (cards, card updates,
  reactions ...) one by one, and nothing is dropped. One held target never holds up another.
- Failures: a refusal that no retry can change (`Refused`) fails the delivery at once; any other
  error is retried with backoff until `retry_deadline` seconds, then the delivery fails. Failed
  deliveries go to the DLQ with their cause; outages of our own Redis are waited out.
- Never twice: a delivery already in the ledger is not made again (its record is reported, so its
  `notification.sent` event is published again if it was lost); the intent is recorded before the
  call, a delivery whose intent another sender holds waits for that sender's record, and one whose
  earlier attempt left no outcome (its sender died mid-call, however long ago) is looked for at the
  target (Slack's message metadata) before it is made again. Card updates are the exception: made
  again they show the same (`WITHOUT_INTENT`), and one that would change nothing is not made.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from services.notifier.errors import RateLimited, Refused
from services.notifier.ledger import Ledger
from services.notifier.plan import Delivery
from shared.engine import is_infrastructure_outage
from shared.events import NotificationSent
from shared.ids import derived_id

logger = logging.getLogger(__name__)

# Slack's clock and our Redis's may disagree: a look-up for an earlier attempt reaches this far before it.
LOOKUP_MARGIN_SECONDS = 60.0
# How often a delivery whose intent another sender holds checks for that sender's record.
HELD_POLL_SECONDS = 0.5
# Deliveries made without recording an intent first: a card update shows the ticket as it is when it is made,
# so making it twice (a sender died mid-call, a redelivered batch) shows the same, or is skipped as a card
# already showing it. That spares two of its round trips to Redis, and most updates are of this kind.
WITHOUT_INTENT = frozenset({"card_update"})
# Thread roots (cards in team channels) kept in memory per process.
THREADS_REMEMBERED = 100_000


@dataclass(frozen=True)
class Sent:
    external_id: str | None
    at: datetime
    conversations: tuple[str, ...] = ()
    digest: bool = False
    # Already in the ledger (made earlier): reported again, not recorded again.
    recorded: bool = False
    # A card posted or updated: the digest of what it shows now (None: unknown).
    shown: str | None = None
    # The messages it took (a long WeCom text is split).
    messages: int = 1


@dataclass(frozen=True)
class Failed:
    reason: str


@dataclass(frozen=True)
class Skipped:
    """Nothing to send: no route to the customer, or a thread post has no thread (the ticket was never announced)."""

    reason: str


Outcome = NotificationSent | Failed | Skipped


class Transport(Protocol):
    # False when the channel is not configured: its deliveries are logged, not made.
    enabled: bool

    async def send(self, delivery: Delivery, thread_ts: str | None) -> Sent | Skipped | None:
        """Sends; returns None when there is nowhere to send it, Skipped when there is nothing new to send (a card
        showing the ticket as it is); nothing was sent then. Raises RateLimited, Refused, or any other exception for
        a transient failure. `thread_ts`: the Slack thread to post in; for an announcement or a card update, the
        ticket's card in the target (None: there is none yet)."""
        ...

    async def send_digest(self, target: str, deliveries: list[Delivery]) -> Sent | None:
        """One message standing for several (after a hold); None when the transport makes no digests."""
        ...

    async def find_sent(self, delivery: Delivery, thread_ts: str | None, since: float) -> str | None:
        """The external ID of `delivery` if a sender that died sent it after `since` (Unix s), into
        `thread_ts` when given."""
        ...


@dataclass
class _Hold:
    until: float = 0.0
    waiting: list[tuple[Delivery, asyncio.Future[Sent | None]]] = field(default_factory=list)
    leader: bool = False


class DeliveryScheduler:
    def __init__(
        self,
        transports: dict[str, Transport],
        ledger: Ledger,
        *,
        owner: str,
        retry_deadline: float = 60.0,
        concurrency: int = 64,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.transports = transports
        self.ledger = ledger
        self.owner = owner
        self.retry_deadline = retry_deadline
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.clock = clock
        self._calls = asyncio.Semaphore(concurrency)
        self._tails: dict[tuple[str, str], asyncio.Task[Outcome]] = {}
        self._holds: dict[str, _Hold] = {}
        self._tasks: set[asyncio.Task[Outcome]] = set()
        # The last card update submitted per ticket and target: earlier ones still waiting are left out.
        self._latest_updates: dict[tuple[str, str], str] = {}
        # Tickets' Slack thread roots per team channel (their cards there) this process announced or read:
        # a ts never changes once set, so a thread post needs no ledger read (bounded; the ledger has them all).
        self._threads: dict[tuple[str, str], str] = {}

    def deliverable(self, delivery: Delivery) -> bool:
        """Whether `delivery`'s channel is configured; one that is not is logged here and never queued."""
        if self.transports[delivery.channel].enabled:
            return True
        logger.info(
            "not delivered: the channel is off",
            extra={"key": delivery.key, "target": delivery.target, "text": delivery.text[:300]},
        )
        return False

    def submit(self, deliveries: list[Delivery]) -> list[asyncio.Task[Outcome]]:
        """Starts the deliveries, each after the previous one of its ticket and target."""
        tasks = []
        for delivery in deliveries:
            chain = (delivery.ticket_id, delivery.target)
            task = asyncio.create_task(self._after(self._tails.get(chain), delivery), name=f"deliver:{delivery.key}")
            self._tails[chain] = task
            if delivery.purpose == "card_update":
                self._latest_updates[chain] = delivery.key
            self._tasks.add(task)
            task.add_done_callback(lambda done, chain=chain: self._finished(chain, done))
            tasks.append(task)
        return tasks

    async def aclose(self) -> None:
        """Cancels what is still running; those deliveries are made again after the restart."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _finished(self, chain: tuple[str, str], task: asyncio.Task[Outcome]) -> None:
        self._tasks.discard(task)
        if self._tails.get(chain) is task:
            del self._tails[chain]
            self._latest_updates.pop(chain, None)

    async def _after(self, previous: asyncio.Task[Outcome] | None, delivery: Delivery) -> Outcome:
        if previous is not None:
            await asyncio.wait([previous])
        chain = (delivery.ticket_id, delivery.target)
        if delivery.purpose == "card_update" and self._latest_updates.get(chain, delivery.key) != delivery.key:
            # A later update of this card waits behind (a hold): it shows the state then, this one adds nothing.
            return Skipped("a later update of the card follows")
        while True:
            try:
                outcome = await self._deliver(delivery)
                if not isinstance(outcome, Sent):
                    return outcome
                event = sent_event(delivery, outcome)
                if not outcome.recorded:
                    async with self._calls:
                        await self.ledger.record(event, datetime.now(UTC), shown=outcome.shown)
                if delivery.purpose == "announcement" and outcome.external_id:
                    self._remember_thread(chain, outcome.external_id)
                return event
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not is_infrastructure_outage(error):
                    raise
                logger.warning("redis unavailable; delivery waits", extra={"key": delivery.key, "error": repr(error)})
                await asyncio.sleep(1.0)

    async def _deliver(self, delivery: Delivery) -> Sent | Failed | Skipped:
        # Whether it was made already is answered by `ledger.begin`, right before the call. The
        # ledger's reads and writes are bounded like the calls: a batch submits hundreds of
        # deliveries at once, more than the Redis connection pool holds.
        transport = self.transports[delivery.channel]
        give_up_at = self.clock() + self.retry_deadline
        attempt = 0
        while True:
            held = await self._through_hold(delivery, transport)
            if held is not None:
                return held
            attempt += 1
            try:
                async with self._calls:
                    thread_ts = delivery.thread_ts
                    if delivery.in_thread and (thread_ts := await self._thread(delivery)) is None:
                        return Skipped(f"the ticket has no Slack thread in {delivery.target}")
                    if delivery.on_card:
                        # A team channel's card is a thread root this process may remember (a DM's card is read:
                        # a ticket assigned to the same agent again gets a new one there).
                        thread_ts = self._threads.get((delivery.ticket_id, delivery.target))
                        if (thread_ts := thread_ts or await self._card(delivery)) is None:
                            return Skipped(f"the ticket has no card in {delivery.target}")
                    sent = await self._call(transport, delivery, thread_ts)
            except RateLimited as limited:
                self._hold(delivery.target).until = max(
                    self._hold(delivery.target).until, self.clock() + limited.retry_after
                )
                logger.info(
                    "target rate limited; holding it",
                    extra={"target": delivery.target, "retry_in_s": limited.retry_after},
                )
                continue
            except Refused as refusal:
                return Failed(str(refusal))
            except Exception as error:
                if is_infrastructure_outage(error):
                    raise
                if self.clock() >= give_up_at:
                    return Failed(f"gave up after {attempt} attempts: {error!r}")
                delay = min(self.backoff_max, self.backoff_initial * 2 ** (attempt - 1))
                logger.warning(
                    "delivery failed, will retry",
                    extra={
                        "key": delivery.key,
                        "target": delivery.target,
                        "attempt": attempt,
                        "retry_in_s": delay,
                        "error": repr(error)[:300],
                    },
                )
                await asyncio.sleep(delay)
                continue
            if sent is None or isinstance(sent, Skipped):
                if delivery.purpose not in WITHOUT_INTENT:
                    await self.ledger.end(delivery.key)
                return sent or Skipped(f"no {delivery.channel} route to answer on")
            return sent

    async def _call(self, transport: Transport, delivery: Delivery, thread_ts: str | None) -> Sent | Skipped | None:
        """The call itself, its intent recorded first; an attempt left without an outcome is looked up, not repeated."""
        if delivery.purpose in WITHOUT_INTENT:
            return await transport.send(delivery, thread_ts)
        # A ticket has one card in a channel: announcing it again (a reassignment) updates it. Whether there is
        # one is read with the intent (one round trip).
        card_of = (delivery.ticket_id, delivery.target) if delivery.purpose == "announcement" else None
        while (intent := await self.ledger.begin(delivery.key, self.owner, card_of=card_of)).held:
            await asyncio.sleep(HELD_POLL_SECONDS)
        if card_of is not None:
            thread_ts = intent.card
        if intent.sent is not None:
            # Made by another sender since this one last looked.
            return _sent_from(intent.sent)
        if intent.left_at is not None:
            since = intent.left_at - LOOKUP_MARGIN_SECONDS
            if (found := await transport.find_sent(delivery, thread_ts, since)) is not None:
                return Sent(found, datetime.now(UTC))
        try:
            return await transport.send(delivery, thread_ts)
        except BaseException:
            # Not sent (as far as we know): the next attempt, ours or another sender's, may go ahead.
            await asyncio.shield(self.ledger.end(delivery.key))
            raise

    async def _thread(self, delivery: Delivery) -> str | None:
        """The ts of the ticket's thread in the delivery's channel: its card there (a ticket handed to another
        team has a card, and so a thread, in each team's channel)."""
        chain = (delivery.ticket_id, delivery.target)
        if (thread_ts := self._threads.get(chain)) is None:
            if (thread_ts := await self._card(delivery)) is not None:
                self._remember_thread(chain, thread_ts)
        return thread_ts

    async def _card(self, delivery: Delivery) -> str | None:
        """The ts of the ticket's card in the delivery's target (a team channel, an assignee's DM)."""
        return await self.ledger.card(delivery.ticket_id, delivery.target)

    def _remember_thread(self, chain: tuple[str, str], thread_ts: str) -> None:
        if len(self._threads) >= THREADS_REMEMBERED:
            # Forget the oldest half (dicts keep insertion order): recent tickets are the busy ones.
            for old in list(self._threads)[: THREADS_REMEMBERED // 2]:
                del self._threads[old]
        self._threads[chain] = thread_ts

    def _hold(self, target: str) -> _Hold:
        return self._holds.setdefault(target, _Hold())

    async def _through_hold(self, delivery: Delivery, transport: Transport) -> Sent | None:
        """Waits out a hold on the target; returns the outcome when the delivery went out in a digest."""
        hold = self._hold(delivery.target)
        if self.clock() >= hold.until:
            return None
        if not delivery.digestible:
            # Waits the hold out and goes on its own (a card is no line in a digest).
            while (remaining := hold.until - self.clock()) > 0:
                await asyncio.sleep(remaining)
            return None
        async with self._calls:
            record = await self.ledger.sent(delivery.key)
        if record is not None:
            # Made before (a redelivery): not part of the digest.
            return _sent_from(record)
        future: asyncio.Future[Sent | None] = asyncio.get_running_loop().create_future()
        hold.waiting.append((delivery, future))
        if hold.leader:
            return await future
        hold.leader = True
        try:
            while (remaining := hold.until - self.clock()) > 0:
                await asyncio.sleep(remaining)
            waiting, hold.waiting = hold.waiting, []
        finally:
            hold.leader = False
        digest = None
        if len(waiting) > 1:
            try:
                async with self._calls:
                    digest = await transport.send_digest(delivery.target, [queued for queued, _ in waiting])
            except RateLimited as limited:
                hold.until = self.clock() + limited.retry_after
            except Exception as error:
                if is_infrastructure_outage(error):
                    raise
                logger.warning(
                    "digest failed; sending one by one", extra={"target": delivery.target, "error": repr(error)[:300]}
                )
        for _, waiter in waiting:
            if not waiter.done():
                waiter.set_result(Sent(digest.external_id, digest.at, digest=True) if digest else None)
        return await future


def sent_event(delivery: Delivery, sent: Sent) -> NotificationSent:
    """The record of a delivery made; its ID follows from the delivery's key, so reporting it again is harmless."""
    return NotificationSent(
        event_id=derived_id("notification.sent", delivery.key),
        occurred_at=sent.at,
        ticket_id=delivery.ticket_id,
        correlation_id=delivery.correlation_id,
        key=delivery.key,
        purpose=delivery.purpose,
        target=delivery.target,
        external_id=sent.external_id,
        conversations=list(sent.conversations),
        digest=sent.digest,
        claimed=delivery.claimed,
        messages=sent.messages,
    )


def _sent_from(record: dict) -> Sent:
    return Sent(
        record.get("external_id"),
        datetime.fromisoformat(record["at"]),
        tuple(record.get("conversations", ())),
        bool(record.get("digest", False)),
        recorded=True,
        messages=int(record.get("messages", 1)),
    )
