"""The Telegram Bot API client, as intake (file downloads) and the notifier (replies) both use it."""

from __future__ import annotations

from telegram import Bot

from shared.settings import Settings


def telegram_bot(settings: Settings) -> Bot:
    """A Bot for SWITCHBOARD_TELEGRAM_API_URL; its file URL is derived from it (".../bot" → ".../file/bot")."""
    assert settings.telegram_bot_token is not None
    api_url = settings.telegram_api_url
    head, bot_path, tail = api_url.rpartition("/bot")
    if not bot_path:
        raise ValueError(f"SWITCHBOARD_TELEGRAM_API_URL must end in /bot, like https://api.telegram.org/bot: {api_url}")
    return Bot(settings.telegram_bot_token.get_secret_value(), base_url=api_url, base_file_url=f"{head}/file/bot{tail}")
