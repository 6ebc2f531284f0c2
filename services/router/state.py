"""What the router reads from and writes to Redis for a batch: one pipeline in, one script out.

- `read` loads the tickets, identity owners and round-robin counters a batch needs, and the
  outcomes remembered for its records (a record handled before a crash gets the very same events).
- `claim` writes the batch's outcomes, identity links and counters and projects its events into the
  read model in one Lua script, all or nothing: when another instance got there first (an outcome or
  identity already taken, as during a rebalance) it writes nothing and says so, and the batch is
  decided again.
Outcomes are only needed until the batch is committed, so the next batch deletes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from pydantic import TypeAdapter
from redis.asyncio import Redis

from services.router.contact_store import MERGE_TREE_LUA, READ_GRAPH, graph_args, parse_graph
from services.router.decide import KnownTicket, RouterEvent, RouterView
from services.router.duplicates import RecentTicket, RecentTickets
from shared.events import ContactEvent, ReplyRoute, TicketEvent
from shared.read_model import (
    LAST_ASSIGNED_KEY,
    PROJECT_LUA,
    agent_key,
    agent_working_key,
    applied_key,
    contact_key,
    contact_merged_into_key,
    contact_merged_key,
    contact_recent_key,
    identity_key,
    projection_args,
    ticket_key,
)

# Long enough to outlive any crash-and-restart; normally deleted as soon as the batch is committed.
OUTCOME_TTL_SECONDS = 24 * 3600
_outcome_adapter: TypeAdapter[list[RouterEvent]] = TypeAdapter(list[TicketEvent | ContactEvent])

# KEYS: outcome keys, identity keys (then merged contacts' pointers, claimed alike), turn keys, agent
# working keys, contact HASH keys of retagged contacts; ARGV: the counts of outcomes, identities (with the
# pointers) and working keys, the outcomes' TTL, the count of retagged contacts, a value per key (outcome,
# owning contact or survivor, turns used, the load the batch read, the tags JSON the batch read), then the
# read-model projection's arguments (PROJECT_LUA). A working set whose size is no longer the load read
# means another router instance gave that agent a ticket (or took one) meanwhile: capacity decided against
# a stale load could be exceeded, so it is a conflict; so are tags changed since they were read (a tag
# change says the tags after it, and would undo the other instance's).
_CLAIM = (
    PROJECT_LUA
    + """
local n_outcomes = tonumber(ARGV[1])
local n_identities = tonumber(ARGV[2])
local n_loads = tonumber(ARGV[3])
local ttl = ARGV[4]
local n_tags = tonumber(ARGV[5])
local conflicts = {}
for i = 1, n_outcomes do
  if redis.call('EXISTS', KEYS[i]) == 1 then table.insert(conflicts, KEYS[i]) end
end
for i = n_outcomes + 1, n_outcomes + n_identities do
  local owner = redis.call('GET', KEYS[i])
  if owner and owner ~= ARGV[5 + i] then table.insert(conflicts, KEYS[i]) end
end
for i = #KEYS - n_tags - n_loads + 1, #KEYS - n_tags do
  if redis.call('SCARD', KEYS[i]) ~= tonumber(ARGV[5 + i]) then table.insert(conflicts, KEYS[i]) end
end
for i = #KEYS - n_tags + 1, #KEYS do
  if (redis.call('HGET', KEYS[i], 'tags') or '[]') ~= ARGV[5 + i] then table.insert(conflicts, KEYS[i]) end
end
if #conflicts > 0 then return conflicts end
for i = 1, n_outcomes do redis.call('SET', KEYS[i], ARGV[5 + i], 'EX', ttl) end
for i = n_outcomes + 1, n_outcomes + n_identities do redis.call('SET', KEYS[i], ARGV[5 + i]) end
for i = n_outcomes + n_identities + 1, #KEYS - n_tags - n_loads do redis.call('INCRBY', KEYS[i], ARGV[5 + i]) end
if #ARGV > 5 + #KEYS then project(ARGV, 6 + #KEYS) end
return conflicts
"""
)


# The ticket HASH fields the router's rules read (KnownTicket), in this order.
TICKET_FIELDS = (
    "contact_id",
    "channel",
    "reply_route",
    "status",
    "team",
    "assignee_id",
    "priority",
    "tags",
    "escalation_level",
    "resolutions",
    "public_replies",
    "subject",
    "csat_resolution",
)
# ARGV[1] is the contact key prefix; then for each (ticket key, applied key, event ID): the ticket's
# TICKET_FIELDS, its contact's name, and 1 when the event is already applied to it; flat, ROW values each.
_TICKETS = f"""
local found = {{}}
for i = 2, #ARGV, 3 do
  local row = redis.call('HMGET', ARGV[i], {", ".join(f"'{name}'" for name in TICKET_FIELDS)})
  for j = 1, {len(TICKET_FIELDS)} do table.insert(found, row[j] or false) end
  if row[1] then
    table.insert(found, redis.call('HGET', ARGV[1] .. row[1], 'name') or false)
  else
    table.insert(found, false)
  end
  table.insert(found, redis.call('SISMEMBER', ARGV[i + 1], ARGV[i + 2]))
end
return found
"""
ROW = len(TICKET_FIELDS) + 2
# The latest tickets of the contacts owning identities (duplicates.py), and of every contact in their merge
# trees (a merged contact's tickets are its survivor's): ARGV[1] the identity key prefix, ARGV[2] the
# recent-tickets key template, ARGV[3] the ticket key prefix, ARGV[4] and ARGV[5] the merged_into and merged
# key templates, then identities. Returns, flat, RECENT_ROW values per ticket: contact ID, ticket ID, created
# (ms), then RECENT_FIELDS.
RECENT_FIELDS = ("status", "subject", "opening_text", "team", "assignee_id", "resolutions")
_RECENT = f"""{MERGE_TREE_LUA}
local found, seen = {{}}, {{}}
local function visit(contact)
  local recent = redis.call('ZRANGE', string.format(ARGV[2], contact), 0, -1, 'WITHSCORES')
  for j = 1, #recent, 2 do
    local row = redis.call('HMGET', ARGV[3] .. recent[j], {", ".join(f"'{name}'" for name in RECENT_FIELDS)})
    table.insert(found, contact)
    table.insert(found, recent[j])
    table.insert(found, recent[j + 1])
    for k = 1, {len(RECENT_FIELDS)} do table.insert(found, row[k] or false) end
  end
end
for i = 6, #ARGV do
  local owner = redis.call('GET', ARGV[1] .. ARGV[i])
  if owner then merge_tree(merge_root(owner, ARGV[4]), ARGV[5], seen, visit) end
end
return found
"""
RECENT_ROW = 3 + len(RECENT_FIELDS)


def outcome_key(record_id: str) -> str:
    return f"sb:router:outcome:{record_id}"


def turn_key(team_id: str) -> str:
    return f"sb:router:turn:{team_id}"


class RouterState:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._tickets = redis.register_script(_TICKETS)
        self._graph = redis.register_script(READ_GRAPH)
        self._recent = redis.register_script(_RECENT)

    async def read(
        self,
        handled: Sequence[tuple[str, str, str]],
        identities: Iterable[str],
        teams: Iterable[str],
        tickets: Iterable[str] = (),
        forget: Sequence[str] = (),
        agents: Iterable[str] = (),
        contacts: Iterable[str] = (),
        recent: bool = False,
    ) -> tuple[dict[str, list[RouterEvent]], RouterView]:
        """The remembered outcomes by record ID, and the view to decide the rest against.

        `handled` lists (record ID, ticket ID, event ID) of every record: their outcomes and tickets
        are read, and records whose event is already applied to their ticket are in `view.handled`.
        `tickets` are further tickets the records name (a merge's target); `agents` whose
        availability (shared.agents), tickets in new or open and last assignment, assignment needs;
        `contacts` that commands name (the contact graph is read for them, the identities' owners and
        the tickets' contacts); `recent`: also the latest tickets of the contacts owning `identities`
        (`view.recent`, for duplicates.py).
        """
        lookups = [*handled, *(("", ticket, "") for ticket in tickets)]
        record_ids = list(dict.fromkeys(record_id for record_id, _, _ in handled))
        owners, team_ids, agent_ids = list(dict.fromkeys(identities)), list(teams), list(agents)
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_id in agent_ids:
                pipe.hget(agent_key(agent_id), "available")
                pipe.scard(agent_working_key(agent_id))
            if agent_ids:
                pipe.zmscore(LAST_ASSIGNED_KEY, agent_ids)
            if forget:
                pipe.delete(*(outcome_key(record_id) for record_id in forget))
            for keys in (
                [outcome_key(record_id) for record_id in record_ids],
                [identity_key(identity) for identity in owners],
                [turn_key(team) for team in team_ids],
            ):
                if keys:
                    pipe.mget(keys)
            if lookups:
                # One call for every record's ticket (keys computed here, so no KEYS: one Redis only).
                await self._tickets(
                    args=[
                        contact_key(""),
                        *(
                            arg
                            for _, ticket, event in lookups
                            for arg in (ticket_key(ticket), applied_key(ticket), event)
                        ),
                    ],
                    client=pipe,
                )
            await self._graph(
                args=graph_args(owners, contacts, [ticket for _, ticket, _ in lookups if ticket]), client=pipe
            )
            if recent and owners:
                await self._recent(
                    args=[
                        identity_key(""),
                        contact_recent_key("%s"),
                        ticket_key(""),
                        contact_merged_into_key("%s"),
                        contact_merged_key("%s"),
                        *owners,
                    ],
                    client=pipe,
                )
            results = iter(await pipe.execute())
        away: set[str] = set()
        working: dict[str, int] = {}
        for agent_id in agent_ids:
            if next(results) == "0":
                away.add(agent_id)
            working[agent_id] = int(next(results))
        last_assigned = next(results) if agent_ids else []
        if forget:
            next(results)
        outcomes_raw = next(results) if record_ids else []
        owner_rows = next(results) if owners else []
        turn_rows = next(results) if team_ids else []
        flat = next(results) if lookups else []
        graph = parse_graph(next(results))
        recent_rows = next(results) if recent and owners else []
        rows = {ticket: flat[index * ROW : index * ROW + ROW - 1] for index, (_, ticket, _) in enumerate(lookups)}
        already = {record_id for index, (record_id, _, _) in enumerate(handled) if flat[index * ROW + ROW - 1]}
        remembered = {
            record_id: _outcome_adapter.validate_json(raw)
            for record_id, raw in zip(record_ids, outcomes_raw, strict=True)
            if raw is not None
        }
        view = RouterView(
            tickets={ticket_id: _known_ticket(row) for ticket_id, row in rows.items()},
            owners=dict(zip(owners, owner_rows, strict=True)),
            turns={team: int(count or 0) for team, count in zip(team_ids, turn_rows, strict=True)},
            handled=already,
            away=frozenset(away),
            working=working,
            loads_read=dict(working),
            last_assigned={
                agent_id: at for agent_id, at in zip(agent_ids, last_assigned, strict=True) if at is not None
            },
            graph=graph,
            recent=RecentTickets(_recent_tickets(recent_rows)),
        )
        return remembered, view

    async def claim(
        self,
        outcomes: Mapping[str, bytes],
        identities: Mapping[str, str],
        turns: Mapping[str, int],
        events: Iterable[RouterEvent] = (),
        loads: Mapping[str, int] | None = None,
        merges: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Writes it all and projects `events` into the read model, or nothing and returns the keys
        another instance took first (an outcome, an identity, or the working set of an agent in
        `loads` whose size is no longer the load given: the agent's tickets in new or open as read).
        `merges` (merged contact → survivor) are claimed like identities: another instance that merged
        the same contact elsewhere meanwhile is a conflict. `tags` (contact → the tags JSON the batch read,
        `tags_json`) are checked like loads: changed meanwhile, they are a conflict."""
        loads = loads or {}
        tags = tags or {}
        projected = projection_args(events)
        merges = merges or {}
        if not outcomes and not identities and not turns and not projected:
            return []
        keys = [
            *(outcome_key(record_id) for record_id in outcomes),
            *(identity_key(identity) for identity in identities),
            *(contact_merged_into_key(contact) for contact in merges),
            *(turn_key(team) for team in turns),
            *(agent_working_key(agent_id) for agent_id in loads),
            *(contact_key(contact) for contact in tags),
        ]
        args = [
            len(outcomes),
            len(identities) + len(merges),
            len(loads),
            OUTCOME_TTL_SECONDS,
            len(tags),
            *outcomes.values(),
            *identities.values(),
            *merges.values(),
            *turns.values(),
            *loads.values(),
            *tags.values(),
            *projected,
        ]
        return list(await self._claim(keys=keys, args=args))


def _recent_tickets(flat: list[str | None]) -> dict[str, list[RecentTicket]]:
    recent: dict[str, list[RecentTicket]] = {}
    for index in range(0, len(flat), RECENT_ROW):
        contact_id, ticket_id, created_ms, *row = flat[index : index + RECENT_ROW]
        fields = dict(zip(RECENT_FIELDS, row, strict=True))
        if contact_id is None or ticket_id is None or fields["status"] is None:
            continue  # a ticket whose HASH is gone: nothing to compare
        recent.setdefault(contact_id, []).append(
            RecentTicket(
                ticket_id,
                datetime.fromtimestamp(int(float(created_ms or 0)) / 1000, UTC),
                fields["status"],
                fields["subject"] or "",
                fields["opening_text"] or "",
                team=fields["team"] or "",
                assignee_id=fields["assignee_id"],
                resolutions=int(fields["resolutions"] or 0),
            )
        )
    return recent


def _known_ticket(row: list[str | None]) -> KnownTicket | None:
    fields = dict(zip(TICKET_FIELDS, row, strict=False))
    contact_id, channel, reply_route = fields["contact_id"], fields["channel"], fields["reply_route"]
    if contact_id is None or channel is None:
        return None
    return KnownTicket(
        contact_id,
        channel,
        ReplyRoute.model_validate_json(reply_route) if reply_route else None,
        # Tickets opened before the lifecycle existed were born open.
        status=fields["status"] or "open",
        team=fields["team"] or "",
        assignee_id=fields["assignee_id"],
        priority=fields["priority"] or "normal",
        tags=tuple(json.loads(fields["tags"] or "[]")),
        escalation_level=int(fields["escalation_level"] or 0),
        resolutions=int(fields["resolutions"] or 0),
        public_replies=int(fields["public_replies"] or 0),
        subject=fields["subject"] or None,
        contact_name=row[len(TICKET_FIELDS)],
        csat_resolution=int(fields["csat_resolution"] or 0),
    )
