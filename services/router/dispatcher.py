"""The router's dispatcher: serves the team queues as capacity frees, and takes work back from agents away.

It runs beside the consumer engine in every router process. Each round reads the queues and the agents'
state from Redis in one pipeline, plans in pure code (services/router/queues.py) and publishes the
plan as system `command.assign`s on the commands topic, keyed by ticket ID; the router applies each in
its ticket's partition order, only while it still holds. A round runs when the handler says a batch
freed capacity or queued a ticket (`wake`), at start (the config may have changed), and every
`assignment.sweep_every` (an agent back from away, a skills timeout, anything missed). Instances
sweeping at once publish the same command IDs, which the router applies once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

from redis.asyncio import Redis

from services.router.assignment import WORKING_STATUSES, Desk, QueuedTicket, off_shift_throughout, on_shift
from services.router.queues import AgentWork, plan
from services.router.state import turn_key
from shared.config import DeskConfig
from shared.engine import is_infrastructure_outage
from shared.events import AssignTicket
from shared.publisher import Outgoing, Publisher
from shared.read_model import LAST_ASSIGNED_KEY, agent_key, agent_working_key, team_queue_key, ticket_key
from shared.state import StateGate
from shared.topics import COMMANDS, Topics

logger = logging.getLogger(__name__)

# The ticket HASH fields a queued ticket's place and assignment need, in this order.
QUEUED_FIELDS = (
    "status",
    "assignee_id",
    "priority",
    "created_at",
    "queued_at",
    "first_response_due",
    "classified",
    "preferred_agent_id",
)
# ARGV: the ticket key template, the number of agents, then per agent (agent key, working key, capacity,
# 1 when their shift is over), then the team queue keys. Returns per agent [available, since, their load
# (tickets in new or open), then (ticket ID, team) of each of those tickets while they are away or off
# shift], then per team [(ticket ID,
# QUEUED_FIELDS) of each queued ticket]; the queues are read only when some available agent has room
# (a desk at capacity with a long queue would otherwise read it all on every wake).
_FIELDS_LUA = ", ".join(f"'{name}'" for name in QUEUED_FIELDS)
_READ = f"""
local template, n_agents = ARGV[1], tonumber(ARGV[2])
local out, room = {{}}, false
for i = 3, 2 + 4 * n_agents, 4 do
  local state = redis.call('HMGET', ARGV[i], 'available', 'since')
  local load = redis.call('SCARD', ARGV[i + 1])
  local row = {{state[1] or false, state[2] or false, load}}
  if state[1] == '0' or ARGV[i + 3] == '1' then
    for _, id in ipairs(redis.call('SMEMBERS', ARGV[i + 1])) do
      table.insert(row, id)
      table.insert(row, redis.call('HGET', string.format(template, id), 'team') or false)
    end
  elseif load < tonumber(ARGV[i + 2]) then
    room = true
  end
  table.insert(out, row)
end
for i = 3 + 4 * n_agents, #ARGV do
  local rows = {{}}
  if room then
    for _, id in ipairs(redis.call('SMEMBERS', ARGV[i])) do
      table.insert(rows, id)
      local fields = redis.call('HMGET', string.format(template, id), {_FIELDS_LUA})
      for j = 1, {len(QUEUED_FIELDS)} do table.insert(rows, fields[j] or false) end
    end
  end
  table.insert(out, rows)
end
return out
"""
_ROW = 1 + len(QUEUED_FIELDS)
# How long a published command is not published again (while the router has yet to apply it).
REPUBLISH_AFTER = timedelta(seconds=1)


class Dispatcher:
    def __init__(self, config: DeskConfig, redis: Redis, publisher: Publisher, topics: Topics, gate: StateGate):
        self.config = config
        self.redis = redis
        self.publisher = publisher
        self.commands_topic = topics.name(COMMANDS)
        self.gate = gate
        self._read = redis.register_script(_READ)
        self._woken = asyncio.Event()
        # Commands published lately, by ID → when: a round woken before the router applied them plans them
        # again (the same IDs) and need not publish them again; after REPUBLISH_AFTER a round does (the
        # router may have dropped one whose agent was full then and has room again).
        self._published: dict[UUID, datetime] = {}

    def wake(self) -> None:
        """Asks for a round as soon as the current one (if any) is done; wakes while one runs make one more."""
        self._woken.set()

    async def run(self) -> None:
        sweep_every = self.config.assignment.sweep_every.total_seconds()
        while True:
            self._woken.clear()
            try:
                if await self.gate.is_open():
                    await self.dispatch(datetime.now(UTC))
            except Exception as error:
                # The next round reads everything afresh: nothing is lost by skipping this one.
                if is_infrastructure_outage(error):
                    logger.warning("dispatcher: infrastructure unavailable", extra={"error": repr(error)})
                else:
                    logger.exception("dispatcher round failed")
            try:
                async with asyncio.timeout(sweep_every):
                    await self._woken.wait()
            except TimeoutError:
                pass

    async def dispatch(self, now: datetime) -> list[AssignTicket]:
        """One round: reads, plans, publishes what it did not publish within REPUBLISH_AFTER (returns once Kafka
        has the commands); returns the commands published."""
        queues, agents, desk = await self.read(now)
        recent = now - min(REPUBLISH_AFTER, self.config.assignment.sweep_every)
        self._published = {command_id: at for command_id, at in self._published.items() if at > recent}
        planned = plan(queues, agents, desk, self.config, now)
        commands = [command for command in planned if command.event_id not in self._published]
        await self.publisher.publish_many(
            [Outgoing.event(self.commands_topic, command.ticket_id, command) for command in commands], timeout=30
        )
        for command in commands:
            self._published[command.event_id] = now
            logger.info(
                "dispatched",
                extra={"ticket_id": command.ticket_id, "to_agent": command.to_agent, "to_team": command.to_team},
            )
        return commands

    async def read(self, now: datetime) -> tuple[dict[str, list[QueuedTicket]], dict[str, AgentWork], Desk]:
        """The team queues, the agents' work and the desk as Redis has them at `now`, in one pipeline."""
        agents, teams = self.config.agents, [team.id for team in self.config.teams]
        working_hours = on_shift(self.config, now)
        shift_over = off_shift_throughout(self.config, now, self.config.assignment.away_grace)
        args: list[str | int] = [ticket_key("%s"), len(agents)]
        for agent in agents:
            args += [agent_key(agent.id), agent_working_key(agent.id), agent.capacity, int(agent.id in shift_over)]
        args += [team_queue_key(team) for team in teams]
        async with self.redis.pipeline(transaction=False) as pipe:
            await self._read(args=args, client=pipe)
            pipe.zmscore(LAST_ASSIGNED_KEY, [agent.id for agent in agents])
            pipe.mget([turn_key(team) for team in teams])
            rows, last_assigned, turns = await pipe.execute()
        work: dict[str, AgentWork] = {}
        loads: dict[str, int] = {}
        away: set[str] = set()
        for agent, row in zip(agents, rows[: len(agents)], strict=True):
            available, since, loads[agent.id], tickets = row[0], row[1], int(row[2]), row[3:]
            if available == "0":
                away.add(agent.id)
            work[agent.id] = AgentWork(
                datetime.fromisoformat(since) if available == "0" and since else None,
                {ticket: team for ticket, team in zip(tickets[::2], tickets[1::2], strict=True) if team},
                off_shift=agent.id in shift_over,
            )
        queues = {team: _queued(team, flat) for team, flat in zip(teams, rows[len(agents) :], strict=True)}
        desk = Desk(
            loads=loads,
            away=frozenset(away),
            on_shift=working_hours,
            last_assigned={agent.id: at for agent, at in zip(agents, last_assigned, strict=True) if at is not None},
            turns={team: int(turn or 0) for team, turn in zip(teams, turns, strict=True)},
        )
        return queues, work, desk


def _queued(team: str, flat: Sequence[str | None]) -> list[QueuedTicket]:
    tickets = []
    for index in range(0, len(flat), _ROW):
        ticket_id, *row = flat[index : index + _ROW]
        fields = dict(zip(QUEUED_FIELDS, row, strict=True))
        # Only tickets someone is to work on now are served; pending and on-hold ones wait for the customer.
        if ticket_id is None or fields["assignee_id"] or fields["status"] not in WORKING_STATUSES:
            continue
        if fields["created_at"] is None:
            continue
        created = datetime.fromisoformat(fields["created_at"])
        classified = json.loads(fields["classified"] or "{}")
        tickets.append(
            QueuedTicket(
                ticket_id=ticket_id,
                team=team,
                priority=fields["priority"] or "normal",
                created_at=created,
                queued_at=datetime.fromisoformat(fields["queued_at"]) if fields["queued_at"] else created,
                due_at=datetime.fromisoformat(fields["first_response_due"]) if fields["first_response_due"] else None,
                skills=tuple(classified.get("skills") or ()),
                language=classified.get("language"),
                preferred=fields["preferred_agent_id"],
            )
        )
    return tickets
