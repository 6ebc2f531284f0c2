"""WeChat Customer Service's reply window: what we may still send a customer, and its Redis projection.

WeCom's rule (kf/send_msg, https://developer.work.weixin.qq.com/document/path/94677): a business may
send a customer messages only within 48 hours after the customer's last message, and at most 5 of
them; a new customer message opens a new window. `refusal` decides (pure); `sb:wecom:window:<address>`
holds, per conversation ("<open_kfid>:<external_userid>"), when the customer last wrote and how many
messages we sent since. Intake records the customer's messages, the notifier what it sent; replay
rebuilds the same from the inbound topic (customer messages) and then the tickets topic
(`notification.sent` to `wecom:` targets).
"""

from __future__ import annotations

from typing import Any

WINDOW_SECONDS = 48 * 3600
MAX_MESSAGES = 5

# KEYS[1] the window, ARGV[1] when the customer wrote (Unix s): a later message opens a new window.
CUSTOMER_WROTE_LUA = """
local at = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'customer_at') or '0')
if at > current then
  redis.call('HSET', KEYS[1], 'customer_at', ARGV[1], 'sent', 0)
end
return 1
"""
# KEYS[1] the window, ARGV[1] when we sent (Unix s), ARGV[2] how many messages: counts only within the
# customer's current window.
SENT_LUA = """
local at = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'customer_at') or '0')
if at >= current then
  redis.call('HINCRBY', KEYS[1], 'sent', ARGV[2])
end
return 1
"""


def window_key(address: str) -> str:
    return f"sb:wecom:window:{address}"


def refusal(customer_at: float | None, sent: int, now: float) -> str | None:
    """Why nothing more may be sent now, or None when a message may go. `customer_at`: when the customer
    last wrote (Unix s; None: never, as far as we know); `sent`: our messages since; `now`: Unix s."""
    if customer_at is None:
        return "WeChat lets us write only after the customer has written to us; the reply was not sent"
    if now - customer_at > WINDOW_SECONDS:
        return (
            "WeChat's 48-hour reply window is closed (the customer last wrote more than 48 hours ago); "
            "the reply was not sent: send it again once the customer writes"
        )
    if sent >= MAX_MESSAGES:
        return (
            f"WeChat allows {MAX_MESSAGES} messages per customer message and they are used up; "
            "the reply was not sent: send it again once the customer writes"
        )
    return None


def customer_wrote(pipe: Any, address: str, at: float) -> Any:
    """Queues on `pipe` that the customer wrote at `at` (Unix s); on a Redis client, returns what to await."""
    return pipe.eval(CUSTOMER_WROTE_LUA, 1, window_key(address), repr(at))


def we_sent(pipe: Any, address: str, at: float, messages: int = 1) -> Any:
    """Queues on `pipe` that we sent the customer `messages` messages at `at` (Unix s); on a Redis client,
    returns what to await."""
    return pipe.eval(SENT_LUA, 1, window_key(address), repr(at), messages)
