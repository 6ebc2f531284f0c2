"""Cutting a long text into the messages a chat API accepts, at line breaks where possible."""

from __future__ import annotations

from collections.abc import Callable


def split_at_lines(text: str, limit: int, size: Callable[[str], int]) -> list[str]:
    """The text in pieces of at most `limit` units as the API counts them (`size` of one character: UTF-8
    bytes, UTF-16 code units …), each cut at the last line break that fits, else where the limit falls,
    never inside a character; blank pieces are dropped. A blank text comes back as it is, for the API to
    refuse in its own words."""
    chunks = []
    rest = text
    while rest:
        cut = _fitting(rest, limit, size)
        newline = rest.rfind("\n", 0, cut) if cut < len(rest) else -1
        if newline > 0:
            chunk, rest = rest[:newline], rest[newline + 1 :]
        else:
            chunk, rest = rest[:cut], rest[cut:]
        if chunk.strip():
            chunks.append(chunk)
    return chunks or [text]


def _fitting(text: str, limit: int, size: Callable[[str], int]) -> int:
    """How many characters of `text` fit in `limit` units."""
    used = 0
    for index, character in enumerate(text):
        used += size(character)
        if used > limit:
            return index
    return len(text)
