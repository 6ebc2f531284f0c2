"""Copying the router's frozen records with some fields changed, on the hot path."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def evolve(record: T, **changes: Any) -> T:
    """A copy of the frozen dataclass `record` with `changes` applied, like `dataclasses.replace` but
    without running `__init__` again: the view absorbs several events per routed message, and
    `replace` (which looks up the fields and validates the keywords every time) cost about 3 µs a call,
    this about 0.5 µs. The changes are not checked against the fields: callers name real fields.
    For dataclasses without `__slots__` only."""
    copied = object.__new__(type(record))
    state = copied.__dict__
    state.update(record.__dict__)
    state.update(changes)
    return copied
