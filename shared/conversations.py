"""Which ticket a conversation belongs to: email threads, Telegram chats, Slack threads, chat sessions,
WhatsApp and WeCom conversations.

Keys look like "email:<message-id>", "telegram:chat:<id>", "slack:<channel>:<thread ts>",
"chat:<session>", "whatsapp:<wa_id>", "wecom:conversation:<open_kfid>:<external_userid>". Intake reads them
to thread inbound messages; the notifier records the Message-IDs it sends so that replies to them find their ticket.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis


def conversation_key(key: str) -> str:
    return f"sb:conversation:{key}"


async def remember_conversation(redis: Redis, keys: list[str], ticket_id: str) -> None:
    if keys:
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(conversation_key(key), ticket_id)
            await pipe.execute()


async def forget_conversation(redis: Redis, keys: list[str]) -> None:
    if keys:
        await redis.delete(*(conversation_key(key) for key in keys))


async def conversation_ticket(redis: Redis, keys: list[str]) -> str | None:
    """The ticket of the first key that has one."""
    if not keys:
        return None
    for ticket_id in await redis.mget([conversation_key(key) for key in keys]):
        if ticket_id is not None:
            return ticket_id
    return None


def chat_channel(ticket_id: str) -> str:
    """The Redis pub/sub channel on which agent messages reach the web-chat sessions of a ticket."""
    return f"sb:chat:{ticket_id}"


# A web-chat session's conversation: the SHA-256 of its token (the token itself is never stored).
CHAT_SESSION_PREFIX = "chat-session:"


def chat_session(token: str) -> str:
    return f"{CHAT_SESSION_PREFIX}{hashlib.sha256(token.encode()).hexdigest()}"


def chat_session_key(conversation: str) -> str:
    """Where a session's ticket, name and email are kept, for a reconnect with its token."""
    return f"sb:chat:session:{conversation.removeprefix(CHAT_SESSION_PREFIX)}"


def telegram_chat(chat_id: int) -> str:
    return f"telegram:chat:{chat_id}"


def telegram_message(chat_id: int | str, message_id: int | str) -> str:
    """The conversation of one message, customer's or bot's: replies to it and edits of it find its ticket."""
    return f"telegram:message:{chat_id}:{message_id}"


def wecom_conversation(address: str) -> str:
    """A WeChat Customer Service conversation: "<open_kfid>:<external_userid>" (one open ticket at a time)."""
    return f"wecom:conversation:{address}"


def whatsapp_conversation(wa_id: str) -> str:
    """A customer's WhatsApp conversation (their number, digits only): it leads to their open ticket."""
    return f"whatsapp:{wa_id}"
