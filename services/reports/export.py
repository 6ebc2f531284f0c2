"""`switchboard export`: tickets, messages or every event of the tickets topic as JSON lines or CSV, for audits
and migrations, streamed: each record is written as it is read, so memory does not grow with the log.

What each kind holds:
- events: every ticket event (JSON lines: the event exactly as the log holds it; CSV: when, ticket, type,
  event ID, who, and the event's JSON);
- tickets: each ticket as it was opened (`ticket.created`: channel, subject, contact, team, category,
  priority, tags); its later changes are its events;
- messages: every message on a ticket (`ticket.message_added`: the customer's, agents' replies and
  internal notes, machine mail), with its text.

`--since`/`--until` keep records whose `occurred_at` is in [since, until).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from typing import Any, Literal

import orjson

ExportKind = Literal["events", "tickets", "messages"]
ExportFormat = Literal["jsonl", "csv"]
EXPORT_KINDS: tuple[ExportKind, ...] = ("events", "tickets", "messages")
_TYPES: dict[ExportKind, str | None] = {"events": None, "tickets": "ticket.created", "messages": "ticket.message_added"}
COLUMNS: dict[ExportKind, tuple[str, ...]] = {
    "events": ("occurred_at", "ticket_id", "type", "event_id", "who", "event"),
    "tickets": (
        "ticket_id", "created_at", "channel", "subject", "contact_id", "contact_name", "contact_email", "team",
        "category", "priority", "tags", "follow_up_of",
    ),
    "messages": (
        "ticket_id", "occurred_at", "message_id", "author", "agent_id", "channel", "kind", "internal", "text",
    ),
}  # fmt: skip


def header(kind: ExportKind, fmt: ExportFormat) -> str:
    """What the output starts with: the CSV header row; nothing for JSON lines."""
    return _csv_line(COLUMNS[kind]) if fmt == "csv" else ""


def line_of(
    value: bytes, kind: ExportKind, fmt: ExportFormat, since: datetime | None, until: datetime | None
) -> str | None:
    """The output line (newline included) of one record's JSON `value`, or None when it is not exported (another
    kind, outside [since, until), or not an event: a record that is not a JSON object)."""
    try:
        event = orjson.loads(value)
        kept = isinstance(event, dict) and _TYPES[kind] in (None, event.get("type"))
        at = datetime.fromisoformat(event["occurred_at"]) if kept else None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if at is None or (since is not None and at < since) or (until is not None and at >= until):
        return None
    if fmt == "jsonl":
        return orjson.dumps(event).decode() + "\n"
    return _csv_line(_row(kind, event))


async def export_lines(
    values: AsyncIterable[bytes],
    kind: ExportKind,
    fmt: ExportFormat,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AsyncIterator[str]:
    """The export of `values` (records' JSON, in log order), line by line as they are read: first the `header`
    (empty for JSON lines), then a line per record exported. It holds one record at a time, and reads the next
    only when asked for the next line."""
    yield header(kind, fmt)
    async for value in values:
        if (line := line_of(value, kind, fmt, since, until)) is not None:
            yield line


def _row(kind: ExportKind, event: dict[str, Any]) -> tuple[Any, ...]:
    if kind == "events":
        who = event.get("actor") or event.get("agent_id") or event.get("author") or ""
        return (
            event["occurred_at"],
            event.get("ticket_id", ""),
            event.get("type", ""),
            event.get("event_id", ""),
            who,
            json.dumps(event, ensure_ascii=False, separators=(",", ":")),
        )
    if kind == "tickets":
        contact = event.get("contact") or {}
        return (
            event.get("ticket_id"), event["occurred_at"], event.get("channel"), event.get("subject"),
            contact.get("contact_id"), contact.get("name"), contact.get("email"), event.get("team"),
            event.get("category"), event.get("priority"), " ".join(event.get("tags") or ()), event.get("follow_up_of"),
        )  # fmt: skip
    return (
        event.get("ticket_id"), event["occurred_at"], event.get("message_id"), event.get("author"),
        event.get("agent_id"), event.get("channel"), event.get("kind"), event.get("internal"), event.get("text"),
    )  # fmt: skip


def _csv_line(row: tuple[Any, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow("" if cell is None else cell for cell in row)
    return out.getvalue()
