"""Choosing the agent who gets a ticket."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def round_robin(members: Sequence[str], turn: int, away: Collection[str] = ()) -> str:
    """The member whose turn it is, or the next one after them who is not away (`/sb away`); turns
    count from 0 and wrap around the team. When every member is away, the one whose turn it is
    (a ticket always has an owner until team queues hold unassigned work)."""
    if not members:
        raise ValueError("a team needs at least one member to assign to")
    start = turn % len(members)
    in_turn = [*members[start:], *members[:start]]
    return next((member for member in in_turn if member not in away), in_turn[0])
