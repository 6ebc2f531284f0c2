"""How a transport says that the other side slowed us down or refused for good."""

from __future__ import annotations


class RateLimited(Exception):
    """The other side asks us to wait `retry_after` seconds (Slack's HTTP 429, Telegram's retry_after)."""

    def __init__(self, retry_after: float):
        super().__init__(f"rate limited for {retry_after} s")
        self.retry_after = retry_after


class Refused(Exception):
    """The other side refused for good (channel not found, recipient rejected, bot blocked ...)."""
