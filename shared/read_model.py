"""The ticket read model in Redis: a projection of the ticket topic.

Every service that emits ticket events applies them here too, so reads are fresh; `switchboard
replay` rebuilds the same state from Kafka alone. Applying an event twice changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

import orjson
from redis.asyncio import Redis

from shared.events import (
    ACTIVE_STATUSES,
    SLA_METRICS,
    AddressUndeliverable,
    CommandRejected,
    ContactEvent,
    ContactMerged,
    ContactsKeptApart,
    ContactTagsChanged,
    ContactUnmerged,
    CsatRated,
    DuplicateSuggested,
    IdentityLinked,
    MergeSuggested,
    MessageAdded,
    MessageStatusReported,
    NotificationSent,
    PriorityChanged,
    ReplyRoute,
    SlaBreached,
    SlaDeadlineSet,
    SlaEscalated,
    SlaMet,
    SlaPaused,
    SlaStopped,
    SlaWarning,
    StatusChanged,
    TagsChanged,
    TicketAssigned,
    TicketCreated,
    TicketEscalated,
    TicketEvent,
    TicketMerged,
    TicketQueued,
    TicketSuggestions,
)
from shared.identities import identities_of

# Email addresses that bounced: nothing more is sent to them.
UNDELIVERABLE_KEY = "sb:undeliverable"


def ticket_key(ticket_id: str) -> str:
    return f"sb:ticket:{ticket_id}"


def _messages_key(ticket_id: str) -> str:
    return f"sb:ticket:{ticket_id}:messages"


def messages_key(ticket_id: str) -> str:
    """The ticket's messages, oldest first (a list of JSON documents)."""
    return _messages_key(ticket_id)


def applied_key(ticket_id: str) -> str:
    return f"sb:ticket:{ticket_id}:applied"


def contact_key(contact_id: str) -> str:
    return f"sb:contact:{contact_id}"


def contact_tags_json(tags: Iterable[str]) -> str:
    """A contact's tags as its HASH's `tags` field holds them (a sorted JSON list; no field: none)."""
    return orjson.dumps(sorted(tags)).decode()


def contact_tickets_key(contact_id: str) -> str:
    return f"sb:contact:{contact_id}:tickets"


def contact_recent_key(contact_id: str) -> str:
    """The contact's latest RECENT_TICKETS tickets (a ZSET scored by creation, ms since the epoch): what the
    router compares a new ticket with (services/router/duplicates.py)."""
    return f"sb:contact:{contact_id}:recent"


# How many of a contact's latest tickets `contact_recent_key` keeps, and how much of a ticket's opening
# customer message its HASH keeps (`opening_text`) for comparing.
RECENT_TICKETS = 10
OPENING_TEXT_CHARS = 600


def contact_identities_key(contact_id: str) -> str:
    return f"sb:contact:{contact_id}:identities"


def contact_verified_key(contact_id: str) -> str:
    """The identities of a contact that a channel proved (the rest of its identities were claimed)."""
    return f"sb:contact:{contact_id}:verified"


def contact_merged_into_key(contact_id: str) -> str:
    """The contact a merged contact was merged into (absent: it is not merged)."""
    return f"sb:contact:{contact_id}:merged_into"


def contact_apart_key(contact_id: str) -> str:
    """The contacts an agent kept apart from this one (`contact.kept_apart`): never suggested for a merge."""
    return f"sb:contact:{contact_id}:apart"


def contact_merged_key(contact_id: str) -> str:
    """The contacts merged directly into this one."""
    return f"sb:contact:{contact_id}:merged"


# Every contact, scored by when its first ticket was created (Unix seconds): the older one survives a merge.
CONTACTS_CREATED_KEY = "sb:contacts:created"


def agent_tickets_key(agent_id: str) -> str:
    """The active tickets (new, open, pending, on hold) assigned to an agent: `/sb mine`, capacity."""
    return f"sb:agent:{agent_id}:tickets"


def agent_working_key(agent_id: str) -> str:
    """The agent's tickets in `new` or `open`: what their capacity counts (services/router/assignment.py)."""
    return f"sb:agent:{agent_id}:working"


# When each agent was last given a ticket (a ZSET: agent ID → seconds since the epoch), for least-loaded ties.
LAST_ASSIGNED_KEY = "sb:agents:last_assigned"


def team_queue_key(team_id: str) -> str:
    """A team's active tickets that nobody is assigned to: `/sb queue`."""
    return f"sb:team:{team_id}:queue"


def ticket_history_key(ticket_id: str) -> str:
    """The ticket's audit trail: one JSON entry per event (type, when, who, what changed), oldest first."""
    return f"sb:ticket:{ticket_id}:history"


def agent_key(agent_id: str) -> str:
    """An agent's state: `available` ("1"/"0") and since when."""
    return f"sb:agent:{agent_id}"


def identity_key(identity: str) -> str:
    """Which contact an identity ("email:ana@example.com") belongs to."""
    return f"sb:identity:{identity}"


# Applies groups of operations, each group once: a group is [applied set, event ID, op, op ...] and
# runs only when the event ID is new to the set ("" as the set: always). An op is a Redis command,
# or ["LINK", identity key, contact identities key, contact ID, identity]: the identity becomes the
# contact's unless another contact owns it already (merging is never silent), or
# ["UNLIST"|"LIST", ticket key, ticket ID]: the ticket leaves (UNLIST) or joins (LIST, only while its
# status is active) its assignee's list, or its team's queue when nobody is assigned, as its HASH says
# at that moment; an assigned ticket in a working status (new, open) also joins its assignee's working set.
# `project(args, first)` reads the groups' JSON at args[first], then the agent list, team queue and
# agent working key templates, the working statuses (space-separated) and the active statuses
# (`projection_args`); other scripts embed it.
PROJECT_LUA = """
local function project(args, first)
  local agent_list, team_queue, agent_working = args[first + 1], args[first + 2], args[first + 3]
  local active, working = {}, {}
  for status in string.gmatch(args[first + 4], '%S+') do working[status] = true end
  for i = first + 5, #args do active[args[i]] = true end
  local function listing(op)
    local row = redis.call('HMGET', op[2], 'status', 'assignee_id', 'team')
    if op[1] == 'UNLIST' then
      if row[2] then
        redis.call('SREM', string.format(agent_list, row[2]), op[3])
        redis.call('SREM', string.format(agent_working, row[2]), op[3])
      end
      if row[3] then redis.call('SREM', string.format(team_queue, row[3]), op[3]) end
      return
    end
    if not active[row[1]] then return end
    if row[2] then
      redis.call('SADD', string.format(agent_list, row[2]), op[3])
      if working[row[1]] then redis.call('SADD', string.format(agent_working, row[2]), op[3]) end
    elseif row[3] then
      redis.call('SADD', string.format(team_queue, row[3]), op[3])
    end
  end
  -- A ticket's events link the same identity to the same contact again: once per call does it.
  local linked = {}
  local groups = cjson.decode(args[first])
  for _, group in ipairs(groups) do
    if group[1] == '' or redis.call('SADD', group[1], group[2]) == 1 then
      for i = 3, #group do
        local op = group[i]
        if op[1] == 'LINK' then
          if linked[op[2]] ~= op[4] then
            linked[op[2]] = op[4]
            local owner = redis.call('SET', op[2], op[4], 'NX', 'GET')
            if owner == false or owner == op[4] then redis.call('SADD', op[3], op[5]) end
          end
        elseif op[1] == 'LIST' or op[1] == 'UNLIST' then
          listing(op)
        else
          redis.call(unpack(op))
        end
      end
    end
  end
  return #groups
end
"""
_APPLY = PROJECT_LUA + "return project(ARGV, 1)"
# Assignee fields a ticket loses when it goes back to a team's queue.
_ASSIGNEE_FIELDS = ("assignee_id", "assignee_name", "assignee_slack_user_id", "assigned_at", "over_capacity")
# Events that move a ticket between an agent's list, a team's queue and neither.
_LISTING_EVENTS = (TicketCreated, TicketAssigned, TicketQueued, StatusChanged)
_ACTIVE_STATUSES = sorted(ACTIVE_STATUSES)
# The statuses an agent's capacity counts (services/router/assignment.py WORKING_STATUSES).
_WORKING_STATUSES = ("new", "open")


def _fields(event: TicketEvent) -> dict[str, str]:
    match event:
        case TicketCreated():
            return {
                "id": event.ticket_id,
                "status": "new",
                "channel": event.channel,
                "subject": event.subject or "",
                "contact_id": event.contact.contact_id,
                "team": event.team,
                "category": event.category,
                "priority": event.priority,
                "tags": json.dumps(event.tags),
                "classified": json.dumps(
                    {"language": event.language, "flags": event.flags, "skills": event.skills, "rules": event.rules}
                ),
                "created_at": event.occurred_at.isoformat(),
                # The message that opened the ticket, so it is not announced twice.
                "opened_by": event.correlation_id or "",
                "escalation_level": "0",
                "resolutions": "0",
                "public_replies": "0",
                **_reply_route_field(event.reply_route),
                **({"follow_up_of": event.follow_up_of} if event.follow_up_of else {}),
                **_customer_language_fields(event),
            }
        case MessageAdded() if event.author == "customer" and event.review is None:
            return {"updated_at": event.occurred_at.isoformat(), **_reply_route_field(event.reply_route)}
        case MessageAdded():
            return {"updated_at": event.occurred_at.isoformat()}
        case TicketAssigned():
            return {
                "team": event.team,
                "assignee_id": event.agent_id,
                "assignee_name": event.agent_name,
                "assignee_slack_user_id": event.slack_user_id,
                "assigned_at": event.occurred_at.isoformat(),
                **({"over_capacity": "1"} if event.over_capacity else {}),
            }
        case SlaDeadlineSet():
            return {f"{event.metric}_due": event.due_at.isoformat(), f"{event.metric}_sla": "running"}
        case SlaPaused():
            return {f"{event.metric}_due": "", f"{event.metric}_sla": "paused"}
        case SlaStopped():
            return {f"{event.metric}_due": "", f"{event.metric}_sla": "stopped"}
        case SlaWarning():
            return {f"{event.metric}_sla": "warning"}
        case SlaBreached():
            return {f"{event.metric}_sla": "breached"}
        case SlaMet():
            return {f"{event.metric}_sla": "met", f"{event.metric}_at": event.met_at.isoformat()}
        case TicketQueued():
            queued = {"team": event.team, "queued_at": event.occurred_at.isoformat()}
            return {**queued, **({"preferred_agent_id": event.preferred_agent_id} if event.preferred_agent_id else {})}
        case StatusChanged():
            moment = {"solved": "solved_at", "closed": "closed_at"}.get(event.to_status)
            return {
                "status": event.to_status,
                "resolutions": str(event.resolution),
                **({moment: event.occurred_at.isoformat()} if moment else {}),
                # The resolution the customer was asked to rate, so a chat page that was away asks again.
                **({"csat_asked": str(event.resolution)} if event.csat_route else {}),
            }
        case PriorityChanged():
            return {"priority": event.to_priority}
        case TagsChanged():
            return {"tags": json.dumps(event.tags)}
        case TicketEscalated():
            return {"escalation_level": str(event.level)}
        case TicketMerged():
            return {"merged_into": event.into_ticket_id}
        case TicketSuggestions():
            # What the card shows and its "Send to customer" buttons name (services/notifier/cards.py).
            return {"suggestions": orjson.dumps([article.model_dump() for article in event.articles]).decode()}
        case CsatRated():
            return {
                "csat_score": str(event.score),
                "csat_comment": event.comment or "",
                "csat_resolution": str(event.resolution),
            }
        case _:
            return {}


def _reply_route_field(route: ReplyRoute | None) -> dict[str, str]:
    return {"reply_route": route.model_dump_json()} if route else {}


def projection(event: TicketEvent | ContactEvent) -> list[Any] | None:
    """The Redis operations that project `event`, as one group for the apply script, or None for an
    event the read model does not hold (`notification.sent`: the notifier's ledger does). Pure."""
    if isinstance(event, NotificationSent):
        return None
    if isinstance(event, IdentityLinked):
        verify = [["SADD", contact_verified_key(event.contact_id), event.identity]] if event.verified else []
        return ["", "", _link(event.contact_id, event.identity), *verify]
    if isinstance(event, ContactMerged):
        return [
            "",
            "",
            ["SET", contact_merged_into_key(event.contact_id), event.survivor_id],
            ["SADD", contact_merged_key(event.survivor_id), event.contact_id],
        ]
    if isinstance(event, ContactUnmerged):
        return [
            "",
            "",
            ["DEL", contact_merged_into_key(event.contact_id)],
            ["SREM", contact_merged_key(event.survivor_id), event.contact_id],
        ]
    if isinstance(event, ContactsKeptApart):
        return [
            "",
            "",
            ["SADD", contact_apart_key(event.contact_id), event.other_contact_id],
            ["SADD", contact_apart_key(event.other_contact_id), event.contact_id],
        ]
    if isinstance(event, ContactTagsChanged):
        # The tags after the change: the contact's last event says them all, whatever replayed before it.
        return ["", "", ["HSET", contact_key(event.contact_id), "tags", contact_tags_json(event.tags)]]
    if isinstance(event, AddressUndeliverable):
        return ["", "", ["SADD", UNDELIVERABLE_KEY, event.identity.partition(":")[2]]]
    ops: list[list[str]] = []
    ticket_id = event.ticket_id
    key = ticket_key(ticket_id)
    listing = isinstance(event, _LISTING_EVENTS)
    if listing:
        ops.append(["UNLIST", key, ticket_id])
    if isinstance(event, TicketQueued | TicketAssigned):
        # A preference for an assignee lasts one wait in the queue; an assignment's capacity note, one assignment.
        dropped = _ASSIGNEE_FIELDS if isinstance(event, TicketQueued) else ("over_capacity",)
        ops.append(["HDEL", key, "preferred_agent_id", *dropped])
    if fields := _fields(event):
        ops.append(["HSET", key, *chain.from_iterable(fields.items())])
    if isinstance(event, TicketAssigned):
        ops.append(["ZADD", LAST_ASSIGNED_KEY, "GT", str(event.occurred_at.timestamp()), event.agent_id])
    if isinstance(event, MessageAdded) and event.author == "agent" and not event.internal:
        ops.append(["HINCRBY", key, "public_replies", "1"])
    if listing:
        ops.append(["LIST", key, ticket_id])
    if (entry := history_entry(event)) is not None:
        # A refused command (or a delivery status) is only recorded on a ticket that exists (its history list does).
        push = "RPUSHX" if isinstance(event, CommandRejected | MessageStatusReported) else "RPUSH"
        ops.append([push, ticket_history_key(ticket_id), orjson.dumps(entry).decode()])
    if isinstance(event, TicketCreated):
        contact = event.contact
        ops.append(["HSETNX", contact_key(contact.contact_id), "id", contact.contact_id])
        if contact.name:
            ops.append(["HSETNX", contact_key(contact.contact_id), "name", contact.name])
        ops += [_link(contact.contact_id, identity) for identity in contact.identities]
        ops.append(["SADD", contact_tickets_key(contact.contact_id), ticket_id])
        # LT keeps the earliest, whatever order a replay applies the contact's tickets in.
        ops.append(["ZADD", CONTACTS_CREATED_KEY, "LT", str(event.occurred_at.timestamp()), contact.contact_id])
        recent = contact_recent_key(contact.contact_id)
        ops.append(["ZADD", recent, str(int(event.occurred_at.timestamp() * 1000)), ticket_id])
        ops.append(["ZREMRANGEBYRANK", recent, "0", str(-RECENT_TICKETS - 1)])
    elif isinstance(event, MessageAdded):
        ops.append(["RPUSH", _messages_key(ticket_id), _message_json(event)])
        if event.author == "customer" and event.review is None:
            # The first customer message is the one that opened the ticket.
            ops.append(["HSETNX", key, "opening_text", event.text[:OPENING_TEXT_CHARS]])
        if event.contact_id and event.sender and event.review is None:
            ops += [_link(event.contact_id, identity) for identity in identities_of(event.sender)]
    return [applied_key(ticket_id), str(event.event_id), *ops]


def projection_args(events: Iterable[TicketEvent | ContactEvent]) -> list[bytes | str]:
    """The arguments of PROJECT_LUA's `project` for `events` (from `first` on), or [] when none is projected."""
    if not (groups := [group for event in events if (group := projection(event)) is not None]):
        return []
    return [
        orjson.dumps(groups),
        agent_tickets_key("%s"),
        team_queue_key("%s"),
        agent_working_key("%s"),
        " ".join(_WORKING_STATUSES),
        *_ACTIVE_STATUSES,
    ]


def history_entry(event: TicketEvent) -> dict[str, Any] | None:
    """The ticket's audit-trail entry for `event` (type, at, actor and what changed, or what was refused
    and why; None values left out), or None for an event that is not the ticket's (notification.sent). Pure."""
    match event:
        case TicketCreated():
            actor, changes = "customer", {"channel": event.channel, "team": event.team, "priority": event.priority}
            changes["follow_up_of"] = event.follow_up_of
        case MessageAdded():
            actor = event.agent_id or event.author
            changes = {"author": event.author, "message_id": str(event.message_id), "internal": event.internal or None}
            changes["review"] = event.review
        case TicketAssigned():
            actor, changes = event.actor, {"agent_id": event.agent_id, "previous_agent_id": event.previous_agent_id}
            changes["team"] = event.team
        case TicketQueued():
            actor, changes = event.actor, {"team": event.team, "previous_agent_id": event.previous_agent_id}
        case StatusChanged():
            actor, changes = event.actor, {"from": event.from_status, "to": event.to_status, "reason": event.reason}
            changes["resolution"] = event.resolution if event.to_status == "solved" else None
        case PriorityChanged():
            actor, changes = event.actor, {"from": event.from_priority, "to": event.to_priority}
        case TagsChanged():
            actor, changes = event.actor, {"added": event.added, "removed": event.removed}
        case TicketEscalated():
            actor, changes = event.actor, {"level": event.level, "agent_id": event.agent_id, "reason": event.reason}
        case TicketMerged():
            actor, changes = event.actor, {"into": event.into_ticket_id}
        case MergeSuggested():
            actor, changes = "system", {"contacts": [event.contact_id, event.other_contact_id], "reason": event.reason}
        case DuplicateSuggested():
            actor, changes = "system", {"duplicate": event.duplicate_ticket_id, "score": event.score}
        case TicketSuggestions():
            actor, changes = "system", {"articles": [article.slug for article in event.articles]}
        case CsatRated():
            actor, changes = "customer", {"resolution": event.resolution, "score": event.score}
        case CommandRejected():
            actor, changes = event.agent_id, {"command": event.command_type, "reason": event.reason}
        case SlaDeadlineSet():
            actor, changes = (
                "system",
                {"metric": event.metric, "due_at": event.due_at.isoformat(), "reason": event.reason},
            )
        case SlaPaused() | SlaStopped():
            actor, changes = "system", {"metric": event.metric, "reason": event.reason}
        case SlaEscalated():
            actor, changes = "system", {"metric": event.metric, "level": event.level, "trigger": event.trigger}
        case SlaWarning() | SlaBreached() | SlaMet():
            actor, changes = "system", {"metric": event.metric}
        case MessageStatusReported():
            # What the customer's channel says of a message we sent (its message_id: the agent reply's).
            actor, changes = "system", {"channel": event.channel, "status": event.status, "error": event.error}
            changes |= {"message_id": str(event.message_id) if event.message_id else None, "purpose": event.purpose}
            changes["external_id"] = event.external_id
        case _:
            return None
    entry = {"type": event.type, "at": event.occurred_at.isoformat(), "actor": actor, **changes}
    return {key: value for key, value in entry.items() if value is not None}


def _customer_language_fields(event: TicketCreated) -> dict[str, str]:
    """The customer's language, where it came from and their time zone (issue 15), those the event has."""
    fields = {
        "customer_language": event.customer_language,
        "customer_language_from": event.customer_language_from,
        "customer_timezone": event.customer_timezone,
    }
    return {key: value for key, value in fields.items() if value}


def _link(contact_id: str, identity: str) -> list[str]:
    return ["LINK", identity_key(identity), contact_identities_key(contact_id), contact_id, identity]


class ReadModel:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._apply = redis.register_script(_APPLY)

    async def apply(self, events: Sequence[TicketEvent | ContactEvent]) -> None:
        """Projects the events in one script call; applying one twice changes nothing."""
        if args := projection_args(events):
            await self._apply(args=args)

    async def ticket_exists(self, ticket_id: str) -> bool:
        return bool(await self.redis.hexists(ticket_key(ticket_id), "id"))

    async def ticket_fields(self, ticket_id: str) -> dict[str, str]:
        return await self.redis.hgetall(ticket_key(ticket_id))

    async def first_message(self, ticket_id: str) -> dict[str, Any] | None:
        first = await self.redis.lindex(_messages_key(ticket_id), 0)
        return json.loads(first) if first else None

    async def ticket(self, ticket_id: str) -> dict[str, Any] | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(ticket_key(ticket_id))
            pipe.lrange(_messages_key(ticket_id), 0, -1)
            pipe.lrange(ticket_history_key(ticket_id), 0, -1)
            fields, messages, history = await pipe.execute()
        if not fields or "id" not in fields:
            return None
        contact = await self.contact(fields["contact_id"])
        return {
            "id": fields["id"],
            "status": fields["status"],
            "channel": fields["channel"],
            "subject": fields["subject"] or None,
            "team": fields["team"],
            "category": fields["category"],
            "priority": fields["priority"],
            "tags": json.loads(fields["tags"]),
            **{"language": None, "flags": [], "skills": [], "rules": [], **json.loads(fields.get("classified", "{}"))},
            "created_at": fields["created_at"],
            "updated_at": fields.get("updated_at", fields["created_at"]),
            "contact": contact,
            "assignee": {
                "agent_id": fields["assignee_id"],
                "name": fields["assignee_name"],
                "slack_user_id": fields["assignee_slack_user_id"],
                "assigned_at": fields["assigned_at"],
            }
            if "assignee_id" in fields
            else None,
            # Per clock: its due instant (while running), state (running, warning, breached, paused, met,
            # stopped) and when it was met.
            "sla": {
                f"{metric}_{key}": fields.get(f"{metric}_{field}") or None
                for metric in SLA_METRICS
                for key, field in (("due", "due"), ("status", "sla"), ("at", "at"))
            },
            "reply_route": json.loads(fields["reply_route"]) if "reply_route" in fields else None,
            "escalation_level": int(fields.get("escalation_level", 0)),
            "resolutions": int(fields.get("resolutions", 0)),
            "public_replies": int(fields.get("public_replies", 0)),
            "csat": {
                "score": int(fields["csat_score"]),
                "comment": fields.get("csat_comment") or None,
                "resolution": int(fields["csat_resolution"]),
            }
            if "csat_score" in fields
            else None,
            "suggestions": json.loads(fields.get("suggestions") or "[]"),
            "follow_up_of": fields.get("follow_up_of"),
            "merged_into": fields.get("merged_into"),
            # The language texts to the customer are written in (None: the desk's default), and why.
            "customer_language": fields.get("customer_language"),
            "customer_language_from": fields.get("customer_language_from"),
            "customer_timezone": fields.get("customer_timezone"),
            "solved_at": fields.get("solved_at"),
            "closed_at": fields.get("closed_at"),
            "messages": [json.loads(message) for message in messages],
            "history": [json.loads(entry) for entry in history],
        }

    async def survivor(self, contact_id: str) -> str:
        """The contact `contact_id` now belongs to: itself, or the end of its chain of merges."""
        root, seen = contact_id, {contact_id}
        while (parent := await self.redis.get(contact_merged_into_key(root))) and parent not in seen:
            root = parent
            seen.add(parent)
        return root

    async def contact(self, contact_id: str) -> dict[str, Any] | None:
        """The contact as agents see it: a merged contact shows its survivor (`merged_from` names the one
        asked for), with the identities and tickets of every contact merged into it (`merged_contacts`)."""
        root = await self.survivor(contact_id)
        members, queue = [root], [root]
        while queue:
            for child in sorted(await self.redis.smembers(contact_merged_key(queue.pop()))):
                if child not in members:
                    members.append(child)
                    queue.append(child)
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hgetall(contact_key(member))
                pipe.smembers(contact_identities_key(member))
                pipe.smembers(contact_tickets_key(member))
                pipe.smembers(contact_verified_key(member))
            rows = await pipe.execute()
        fields = rows[0]
        if not fields:
            return None
        identities = set().union(*rows[1::4])
        tickets = set().union(*rows[2::4])
        verified = set().union(*rows[3::4])

        def of_kind(kind: str) -> list[str]:
            return sorted(identity.split(":", 1)[1] for identity in identities if identity.startswith(f"{kind}:"))

        return {
            "id": root,
            "name": fields.get("name") or next((row.get("name") for row in rows[4::4] if row.get("name")), None),
            "emails": of_kind("email"),
            "phones": of_kind("phone"),
            "telegram_user_ids": of_kind("telegram"),
            "slack_user_ids": of_kind("slack"),
            "wecom_external_userids": of_kind("wecom"),
            # The identities a channel proved ("email:…"); the others were typed into a form or chat.
            "verified": sorted(verified),
            "tickets": sorted(tickets),
            "merged_contacts": sorted(members[1:]),
            # The survivor's own tags (`switchboard contact tag`).
            "tags": json.loads(fields.get("tags") or "[]"),
            **({"merged_from": contact_id} if root != contact_id else {}),
        }


def _message_json(event: MessageAdded) -> str:
    return orjson.dumps(
        {
            "id": str(event.message_id),
            "author": event.author,
            "agent_id": event.agent_id,
            "internal": event.internal,
            "channel": event.channel,
            "kind": event.kind,
            "text": event.text,
            "html": event.html,
            "attachments": [attachment.model_dump() for attachment in event.attachments],
            "sender": event.sender.model_dump(exclude_none=True) if event.sender else None,
            "review": event.review,
            "edit_of": event.edit_of,
            "at": event.received_at.isoformat(),
        }
    ).decode()
