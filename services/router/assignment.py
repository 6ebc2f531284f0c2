"""Choosing the agent who gets a ticket."""

from __future__ import annotations

from collections.abc import Sequence


def round_robin(members: Sequence[str], turn: int) -> str:
    """The member whose turn it is; turns count from 0 and wrap around the team."""
    if not members:
        raise ValueError("a team needs at least one member to assign to")
    return members[turn % len(members)]
