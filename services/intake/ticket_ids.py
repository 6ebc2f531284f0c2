"""Minting and remembering ticket IDs, unique across every intake instance and across a lost Redis.

One Redis counter per prefix. Minting refuses (`StateNotRestored`) while Redis lacks the state
marker (shared.state): after Redis lost its data only `switchboard replay`, which sets the counter
to at least the highest number in the log, may let minting go on, so a number is never handed out
twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.conversations import conversation_key
from shared.ids import TICKET_NUMBER_OFFSET, format_ticket_id
from shared.read_model import ticket_key
from shared.script_batches import ScriptBatches
from shared.state import RESTORED_KEY, StateNotRestored

_NOT_RESTORED = "SBNOTRESTORED"
# Merges chained (A into B, B later into C) that a message is carried through; a bound, not a real limit.
_MERGE_HOPS = 8
_MINT = f"""
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('{_NOT_RESTORED} Switchboard state not restored')
end
return redis.call('INCR', KEYS[2])
"""
# The ticket of a channel message, in one atomic step: the one it got before (KEYS[3]), else the
# one the channel found (ARGV[1]), else the first conversation of KEYS[4 .. 3+ARGV[2]] that has one,
# else a new ID (refused while the state is not restored, KEYS[1]; counter KEYS[2]). A ticket found
# that was merged (closed, `merged_into` on its read-model HASH, ARGV[6] .. ID) stands for the ticket
# it was merged into (through at most _MERGE_HOPS merges). A ticket found that is closed gets a new
# follow-up ticket instead when ARGV[7] is '1' (a person wrote), remembered at ARGV[5]. The message then
# keeps its ticket, and the remaining KEYS (conversations) lead to it. Returns {ticket, the closed
# ticket it follows up on or ''}.
_RESOLVE = f"""
local lookups = tonumber(ARGV[2])
local function merge_target(ticket)
  for _ = 1, {_MERGE_HOPS} do
    local row = redis.call('HMGET', ARGV[6] .. ticket, 'status', 'merged_into')
    if row[1] ~= 'closed' or not row[2] then return ticket end
    ticket = row[2]
  end
  return ticket
end
local ticket = redis.call('GET', KEYS[3])
local follow_up = ''
if ticket then
  follow_up = redis.call('GET', ARGV[5]) or ''
else
  if ARGV[1] ~= '' then ticket = ARGV[1] end
  for i = 4, 3 + lookups do
    if ticket then break end
    ticket = redis.call('GET', KEYS[i])
  end
  if ticket then ticket = merge_target(ticket) end
  if ticket and ARGV[7] == '1' and redis.call('HGET', ARGV[6] .. ticket, 'status') == 'closed' then
    follow_up = ticket
    ticket = false
  end
  if not ticket then
    if redis.call('EXISTS', KEYS[1]) == 0 then
      return redis.error_reply('{_NOT_RESTORED} Switchboard state not restored')
    end
    ticket = ARGV[3] .. '-' .. tostring(tonumber(ARGV[4]) + redis.call('INCR', KEYS[2]))
  end
  redis.call('SET', KEYS[3], ticket)
  if follow_up ~= '' then redis.call('SET', ARGV[5], follow_up) end
end
for i = 4 + lookups, #KEYS do redis.call('SET', KEYS[i], ticket) end
return {{ticket, follow_up}}
"""


@dataclass(frozen=True)
class Resolution:
    """Where a channel message goes, and what intake indexed for it (carried in its InboundMessage,
    so that `switchboard replay` rebuilds the index)."""

    ticket_id: str
    message_id: UUID
    idempotency_key: str
    conversations: tuple[str, ...]
    # The message's thread led to this closed ticket: `ticket_id` is a new one following up on it.
    follow_up_of: str | None = None

    def fields(self) -> dict[str, Any]:
        """The InboundMessage fields this resolution gives."""
        return {
            "ticket_id": self.ticket_id,
            "message_id": self.message_id,
            "idempotency_key": self.idempotency_key,
            "conversations": list(self.conversations),
            "follow_up_of": self.follow_up_of,
        }


def sequence_key(prefix: str) -> str:
    return f"sb:intake:ticket_sequence:{prefix}"


def remembered_key(channel_key: str) -> str:
    return f"sb:intake:ticket_for:{channel_key}"


def follow_up_key(channel_key: str) -> str:
    """The closed ticket a channel message's new ticket follows up on (so a redelivery says it again)."""
    return f"sb:intake:follow_up_of:{channel_key}"


class TicketIds:
    def __init__(self, redis: Redis, prefix: str):
        self.redis = redis
        self.prefix = prefix
        self._mint = redis.register_script(_MINT)
        # Every channel message resolves its ticket: concurrent ones share round trips.
        self._resolve = ScriptBatches(redis, _RESOLVE, name="resolve-ticket")

    async def mint(self) -> str:
        """A new ticket ID; raises StateNotRestored while Redis lost its state."""
        try:
            sequence = await self._mint(keys=[RESTORED_KEY, sequence_key(self.prefix)])
        except ResponseError as error:
            raise _refusal(error) from error
        return format_ticket_id(self.prefix, sequence)

    async def resolve(
        self,
        channel_key: str,
        *,
        found: str | None,
        lookup: Sequence[str],
        remember: Sequence[str],
        follows_up: bool = True,
    ) -> tuple[str, str | None]:
        """The channel message's ticket and the closed ticket it follows up on, if any (see _RESOLVE);
        raises StateNotRestored instead of minting while Redis lost its state."""
        keys = [
            RESTORED_KEY,
            sequence_key(self.prefix),
            remembered_key(channel_key),
            *(conversation_key(key) for key in lookup),
            *(conversation_key(key) for key in remember),
        ]
        args = [
            found or "",
            len(lookup),
            self.prefix,
            TICKET_NUMBER_OFFSET,
            follow_up_key(channel_key),
            ticket_key(""),
            "1" if follows_up else "0",
        ]
        try:
            ticket, follow_up_of = await self._resolve(keys, args)
        except ResponseError as error:
            raise _refusal(error) from error
        return ticket, follow_up_of or None

    async def remembered(self, channel_key: str) -> str | None:
        return await self.redis.get(remembered_key(channel_key))

    async def remember(self, channel_key: str, ticket_id: str) -> str:
        """Records the channel message's ticket; if another delivery recorded one first, that one wins."""
        earlier = await self.redis.set(remembered_key(channel_key), ticket_id, nx=True, get=True)
        return earlier or ticket_id


def _refusal(error: ResponseError) -> Exception:
    return StateNotRestored() if str(error).startswith(_NOT_RESTORED) else error
