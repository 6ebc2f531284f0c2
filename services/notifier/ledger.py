"""The notifier's record of what it sent, in Redis: a projection of `notification.sent` events.

- `sb:notifier:sent:<key>`: the delivery was made (its external ID and when), so it is never made
  twice; `switchboard replay` rebuilds these from the events.
- `sb:notifier:card:<ticket>:<target>`: the ts of the ticket's card in a team channel
  ("slack:C0SUPPORT"), the root of the ticket's thread there, and in an assignee's DM ("slack:U0BEN"),
  so that it is updated in place. A ticket handed to another team gets a card (and a thread) in that
  team's channel too: a thread post goes under the card of the channel it is posted to.
- `sb:notifier:shown:<ticket>:<target>`: a digest of what that card shows, so that an update that would
  change nothing is not made. Not rebuilt by replay (a card without one is simply updated).
- `sb:notifier:acks:<channel>:<address>`: acknowledgements sent this hour (a loop breaker).
- `sb:notifier:acks:claimed:<channel>:<address>` and `sb:notifier:acks-claimed`: acknowledgements sent this
  hour to addresses nobody proved (typed into the web form), per address and all together (issue #16);
  `sb:notifier:ack-reserved:<key>`: such an acknowledgement was counted (for the hour; not rebuilt).
- `sb:notifier:intent:<key>`: an attempt at a delivery ("<owner> <its time> <the first attempt's
  time>", Redis time in ms), recorded before the call and removed with its outcome. For
  `intent_lease_seconds` it holds off other senders (they wait for its record); after that it is
  left over (its sender died mid-call) and whoever takes the delivery over knows it may have been
  made, and since when.
- the conversation index (`shared.conversations`): our Message-IDs and Telegram message IDs lead
  customers' replies to the ticket.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from services.notifier.pipelining import GroupPipeline
from shared.conversations import conversation_key
from shared.events import NotificationSent
from shared.read_model import UNDELIVERABLE_KEY, contact_verified_key, ticket_key

SENT_TTL_SECONDS = 30 * 24 * 3600
ACKNOWLEDGEMENT_WINDOW_SECONDS = 3600
INTENT_LEASE_SECONDS = 120
# The purposes of a delivery that posts or updates a ticket's card.
CARD_PURPOSES = frozenset({"announcement", "assignment_dm", "card_update"})
# The read model's fields on the customer's language and time zone (issue 15), read with each ticket's context.
CUSTOMER_FIELDS = ("customer_language", "customer_timezone")


def sent_key(key: str) -> str:
    return f"sb:notifier:sent:{key}"


def mail_thread_key(ticket_id: str) -> str:
    """The Message-IDs of the mails we sent about a ticket (a sorted set by time): later mails refer to them."""
    return f"sb:notifier:mail:{ticket_id}"


# Earlier mails a new one refers to at most (References grows with a thread; mail clients need a few).
MAIL_THREAD_KEPT = 20


def card_key(ticket_id: str, target: str) -> str:
    return f"sb:notifier:card:{ticket_id}:{target}"


def card_shown_key(ticket_id: str, target: str) -> str:
    return f"sb:notifier:shown:{ticket_id}:{target}"


def acknowledgements_key(target: str) -> str:
    """The hour's acknowledgement counter of `target` ("email:Ana@Example.com"): one per address however
    it is spelt, the same for reserving, releasing and replaying."""
    return f"sb:notifier:acks:{target.lower()}"


def claimed_acknowledgements_key(target: str) -> str:
    """The hour's acknowledgement counter of a claimed (never proved) address."""
    return f"sb:notifier:acks:claimed:{target.lower()}"


def reserved_key(key: str) -> str:
    """An acknowledgement to a claimed address that took its place in the hour's counters (a redelivery of its
    event takes none again: the lower limit leaves no room for a second reservation)."""
    return f"sb:notifier:ack-reserved:{key}"


# The hour's acknowledgements to claimed addresses, all of them together.
CLAIMED_ACKNOWLEDGEMENTS_KEY = "sb:notifier:acks-claimed"


def intent_key(key: str) -> str:
    return f"sb:notifier:intent:{key}"


# Takes one of the hour's acknowledgements for KEYS[1] unless ARGV[1] are taken; a delivery already
# sent (KEYS[2]) is let through without taking another.
_RESERVE_ACKNOWLEDGEMENT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
local taken = redis.call('INCR', KEYS[1])
if taken == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if taken > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return 0
end
return 1
"""


# Takes one of the hour's acknowledgements from every counter KEYS[3..] unless one of them has its limit
# ARGV[3..] taken (then none is taken); a delivery already sent (KEYS[1]) or already reserved (KEYS[2], e.g.
# by a notifier killed before it sent) is let through without taking again. ARGV[1]: the window.
_RESERVE_FROM_ALL = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
for i = 3, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i]) then return 0 end
end
for i = 3, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return 1
"""


# KEYS: the intent, the sent record. ARGV: the owner, the lease and how long a left-over intent is kept
# (ms). Answers {'sent', record}, {'held', ''} while another sender's lease runs, or {'mine', the time
# (ms) of the first attempt left without an outcome, or ''}. Redis's clock is the one all instances
# share. (An intent in another shape is taken as left over a lease ago.)
_BEGIN = """
local record = redis.call('GET', KEYS[2])
if record then return {'sent', record} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local since = ''
local found = redis.call('GET', KEYS[1])
if found then
  local owner, at, first = string.match(found, '^(.*) (%d+) (%d+)$')
  if not at then owner, at, first = '', now - tonumber(ARGV[2]), now - tonumber(ARGV[2]) end
  if owner ~= ARGV[1] and now - tonumber(at) < tonumber(ARGV[2]) then return {'held', ''} end
  since = first
end
local first_attempt = since
if first_attempt == '' then first_attempt = now end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. now .. ' ' .. first_attempt, 'PX', ARGV[3])
return {'mine', tostring(since)}
"""


@dataclass(frozen=True)
class Intent:
    """What `Ledger.begin` found: the delivery's record (`sent`), another sender at work (`held`), or
    the go-ahead, with `left_at` (Unix s) when an earlier attempt left no outcome and may have been made."""

    sent: dict[str, Any] | None = None
    held: bool = False
    left_at: float | None = None
    # The ts of the card asked for (`card_of`), when there is one.
    card: str | None = None


def project_sent(pipe: Any, event: NotificationSent, now: datetime, *, count_acknowledgement: bool = True) -> None:
    """Queues on `pipe` what a sent notification changes; the same for the notifier and replay.

    The live notifier counts an acknowledgement when it reserves it (`Ledger.reserve_acknowledgements`),
    so it passes `count_acknowledgement=False`; replay counts the ones sent within the last hour.
    """
    record = {
        "external_id": event.external_id,
        "at": event.occurred_at.isoformat(),
        "digest": event.digest,
        "conversations": event.conversations,
        # Kept only when a delivery took several messages (WeCom), as most take one.
        **({"messages": event.messages} if event.messages != 1 else {}),
    }
    pipe.set(sent_key(event.key), json.dumps(record), ex=SENT_TTL_SECONDS)
    if event.target.startswith("email:") and event.external_id:
        pipe.zadd(mail_thread_key(event.ticket_id), {event.external_id: event.occurred_at.timestamp()})
        pipe.zremrangebyrank(mail_thread_key(event.ticket_id), 0, -MAIL_THREAD_KEPT - 1)
    if event.purpose in ("announcement", "assignment_dm") and event.external_id and not event.digest:
        pipe.set(card_key(event.ticket_id, event.target), event.external_id)
    for conversation in event.conversations:
        pipe.set(conversation_key(conversation), event.ticket_id)
    age = (now - event.occurred_at).total_seconds()
    if count_acknowledgement and event.purpose == "acknowledgement" and age < ACKNOWLEDGEMENT_WINDOW_SECONDS:
        counters = [acknowledgements_key(event.target)]
        if event.claimed:
            counters += [claimed_acknowledgements_key(event.target), CLAIMED_ACKNOWLEDGEMENTS_KEY]
        for counter in counters:
            pipe.incr(counter)
            pipe.expire(counter, int(ACKNOWLEDGEMENT_WINDOW_SECONDS - age) + 1, nx=True)
    pipe.delete(intent_key(event.key))


class Ledger:
    def __init__(self, redis: Redis, *, intent_lease_seconds: float = INTENT_LEASE_SECONDS):
        """`intent_lease_seconds`: how long a recorded intent holds off other senders (longer than any call takes)."""
        self.redis = redis
        self.intent_lease_seconds = intent_lease_seconds
        self._reserve = redis.register_script(_RESERVE_ACKNOWLEDGEMENT)
        self._reserve_from_all = redis.register_script(_RESERVE_FROM_ALL)
        self._begin = redis.register_script(_BEGIN)
        # Concurrent deliveries' reads (and intents) go out together, and so do their records.
        self._reads = GroupPipeline(redis)
        self._writes = GroupPipeline(redis, transaction=True)

    async def context(
        self, ticket_ids: Sequence[str], emails: Sequence[str], channels: Sequence[str]
    ) -> tuple[list[tuple[list[str | None], list[str]]], set[str]]:
        """For a batch: the read model's team, opening message, assignee's Slack user and the customer's
        language and time zone (`CUSTOMER_FIELDS`) of each ticket
        with which of the team `channels` ("slack:C0SUPPORT") hold its card, and which of `emails` bounced."""
        channels = list(channels)
        async with self.redis.pipeline(transaction=False) as pipe:
            for ticket_id in ticket_ids:
                pipe.hmget(ticket_key(ticket_id), "team", "opened_by", "assignee_slack_user_id", *CUSTOMER_FIELDS)
                if channels:
                    pipe.mget([card_key(ticket_id, channel) for channel in channels])
            if emails:
                pipe.smismember(UNDELIVERABLE_KEY, list(emails))
            results = await pipe.execute()
        bounced = {email for email, member in zip(emails, results[-1], strict=True) if member} if emails else set()
        step = 2 if channels else 1
        rows = []
        for index in range(len(ticket_ids)):
            cards = results[index * step + 1] if channels else []
            rows.append((results[index * step], [c for c, ts in zip(channels, cards, strict=True) if ts]))
        return rows, bounced

    async def verified(self, contact_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """Each contact's identities a channel proved (the router's `sb:contact:<id>:verified`)."""
        if not contact_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for contact_id in contact_ids:
                pipe.smembers(contact_verified_key(contact_id))
            rows = await pipe.execute()
        return {contact_id: frozenset(row) for contact_id, row in zip(contact_ids, rows, strict=True)}

    async def reserve_acknowledgements(
        self,
        deliveries: Sequence[tuple[str, str]],
        per_hour: int,
        *,
        claimed: frozenset[str] = frozenset(),
        claimed_limits: tuple[int, int] = (0, 0),
    ) -> list[bool]:
        """For each (delivery key, target): whether it may go out within the hourly limit (it is counted now).

        The deliveries whose key is in `claimed` go to addresses nobody proved: they must also fit
        `claimed_limits` (per such address, all of them together, per hour).
        """
        per_address, in_all = claimed_limits
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, target in deliveries:
                if key in claimed:
                    await self._reserve_from_all(
                        keys=[
                            sent_key(key),
                            reserved_key(key),
                            acknowledgements_key(target),
                            claimed_acknowledgements_key(target),
                            CLAIMED_ACKNOWLEDGEMENTS_KEY,
                        ],
                        args=[ACKNOWLEDGEMENT_WINDOW_SECONDS, "", per_hour, per_address, in_all],
                        client=pipe,
                    )
                    continue
                await self._reserve(
                    keys=[acknowledgements_key(target), sent_key(key)],
                    args=[per_hour, ACKNOWLEDGEMENT_WINDOW_SECONDS],
                    client=pipe,
                )
            return [bool(allowed) for allowed in await pipe.execute()]

    async def release_acknowledgement(self, target: str, *, claimed_key: str | None = None) -> None:
        """Gives back a reserved acknowledgement that was not sent (a relay outage must not use up the quota);
        `claimed_key`: the delivery's key when it went to a claimed address (its reservation is given back too)."""
        if claimed_key is None:
            await self.redis.decr(acknowledgements_key(target))
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for counter in (acknowledgements_key(target), claimed_acknowledgements_key(target)):
                pipe.decr(counter)
            pipe.decr(CLAIMED_ACKNOWLEDGEMENTS_KEY)
            pipe.delete(reserved_key(claimed_key))
            await pipe.execute()

    async def sent(self, key: str) -> dict[str, Any] | None:
        record = await self.redis.get(sent_key(key))
        return json.loads(record) if record else None

    async def card(self, ticket_id: str, target: str) -> str | None:
        [ts] = await self._reads.execute(lambda pipe: pipe.get(card_key(ticket_id, target)))
        return ts

    async def begin(self, key: str, owner: str, *, card_of: tuple[str, str] | None = None) -> Intent:
        """Records `owner`'s intent to make the delivery, unless it was made or another sender's lease runs.
        `card_of`: (ticket ID, target) whose card's ts to read along (`Intent.card`)."""
        args = [intent_key(key), sent_key(key), owner, int(self.intent_lease_seconds * 1000), SENT_TTL_SECONDS * 1000]

        def queue(pipe: Any) -> None:
            pipe.evalsha(self._begin.sha, 2, *args)
            if card_of is not None:
                pipe.get(card_key(*card_of))

        (outcome, found), *card = await self._reads.execute(queue, scripts=[self._begin])
        if outcome == "sent":
            return Intent(sent=json.loads(found))
        if outcome == "held":
            return Intent(held=True)
        return Intent(left_at=int(found) / 1000 if found else None, card=card[0] if card else None)

    async def end(self, key: str) -> None:
        await self._writes.execute(lambda pipe: pipe.delete(intent_key(key)))

    async def record(self, event: NotificationSent, now: datetime, *, shown: str | None = None) -> None:
        """Records a delivery made; `shown`: for a card posted or updated, the digest of what it shows now."""

        def queue(pipe: Any) -> None:
            project_sent(pipe, event, now, count_acknowledgement=False)
            if event.purpose in CARD_PURPOSES and event.external_id and not event.digest:
                if shown is None:
                    pipe.delete(card_shown_key(event.ticket_id, event.target))
                else:
                    pipe.set(card_shown_key(event.ticket_id, event.target), shown, ex=SENT_TTL_SECONDS)

        await self._writes.execute(queue)
