"""The ticket read model in Redis: a projection of the ticket topic.

Every service that emits ticket events applies them here too, so reads are fresh; `switchboard
replay` rebuilds the same state from Kafka alone. Applying an event twice changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from shared.events import (
    MessageAdded,
    SlaBreached,
    SlaDeadlineSet,
    SlaWarning,
    TicketAssigned,
    TicketCreated,
    TicketEvent,
)


def ticket_key(ticket_id: str) -> str:
    return f"sb:ticket:{ticket_id}"


def _messages_key(ticket_id: str) -> str:
    return f"sb:ticket:{ticket_id}:messages"


def _applied_key(ticket_id: str) -> str:
    return f"sb:ticket:{ticket_id}:applied"


def contact_key(contact_id: str) -> str:
    return f"sb:contact:{contact_id}"


def contact_tickets_key(contact_id: str) -> str:
    return f"sb:contact:{contact_id}:tickets"


def contact_emails_key(contact_id: str) -> str:
    return f"sb:contact:{contact_id}:emails"


def email_identity_key(email: str) -> str:
    return f"sb:identity:email:{normalise_email(email)}"


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _fields(event: TicketEvent) -> dict[str, str]:
    match event:
        case TicketCreated():
            return {
                "id": event.ticket_id,
                "status": "open",
                "channel": event.channel,
                "subject": event.subject or "",
                "contact_id": event.contact.contact_id,
                "team": event.team,
                "category": event.category,
                "priority": event.priority,
                "tags": json.dumps(event.tags),
                "created_at": event.occurred_at.isoformat(),
            }
        case MessageAdded():
            return {"updated_at": event.occurred_at.isoformat()}
        case TicketAssigned():
            return {
                "assignee_id": event.agent_id,
                "assignee_name": event.agent_name,
                "assignee_slack_user_id": event.slack_user_id,
                "assigned_at": event.occurred_at.isoformat(),
            }
        case SlaDeadlineSet():
            return {f"{event.metric}_due": event.due_at.isoformat(), f"{event.metric}_sla": "running"}
        case SlaWarning():
            return {f"{event.metric}_sla": "warning"}
        case SlaBreached():
            return {f"{event.metric}_sla": "breached"}


class ReadModel:
    def __init__(self, redis: Redis):
        self.redis = redis

    async def apply(self, events: Sequence[TicketEvent]) -> None:
        if not events:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.sadd(_applied_key(event.ticket_id), str(event.event_id))
            first_time = await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            for event, is_new in zip(events, first_time, strict=True):
                if not is_new:
                    continue
                pipe.hset(ticket_key(event.ticket_id), mapping=_fields(event))
                if isinstance(event, TicketCreated):
                    _project_contact(pipe, event)
                if isinstance(event, MessageAdded):
                    pipe.rpush(_messages_key(event.ticket_id), _message_json(event))
            await pipe.execute()

    async def ticket_exists(self, ticket_id: str) -> bool:
        return bool(await self.redis.hexists(ticket_key(ticket_id), "id"))

    async def ticket(self, ticket_id: str) -> dict[str, Any] | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(ticket_key(ticket_id))
            pipe.lrange(_messages_key(ticket_id), 0, -1)
            fields, messages = await pipe.execute()
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
            "sla": {
                "first_response_due": fields.get("first_response_due"),
                "first_response_status": fields.get("first_response_sla"),
            },
            "messages": [json.loads(message) for message in messages],
        }

    async def contact(self, contact_id: str) -> dict[str, Any] | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(contact_key(contact_id))
            pipe.smembers(contact_emails_key(contact_id))
            pipe.smembers(contact_tickets_key(contact_id))
            fields, emails, tickets = await pipe.execute()
        if not fields:
            return None
        return {
            "id": contact_id,
            "name": fields.get("name") or None,
            "emails": sorted(emails),
            "tickets": sorted(tickets),
        }


def _project_contact(pipe: Any, event: TicketCreated) -> None:
    contact = event.contact
    pipe.hsetnx(contact_key(contact.contact_id), "id", contact.contact_id)
    if contact.name:
        pipe.hsetnx(contact_key(contact.contact_id), "name", contact.name)
    if contact.email:
        pipe.sadd(contact_emails_key(contact.contact_id), normalise_email(contact.email))
        # Replay rebuilds the identity index; a live router has already claimed it.
        pipe.set(email_identity_key(contact.email), contact.contact_id, nx=True)
    pipe.sadd(contact_tickets_key(contact.contact_id), event.ticket_id)


def _message_json(event: MessageAdded) -> str:
    return json.dumps(
        {
            "id": str(event.message_id),
            "author": event.author,
            "channel": event.channel,
            "text": event.text,
            "at": event.received_at.isoformat(),
        },
        ensure_ascii=False,
    )
