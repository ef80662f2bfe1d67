"""python-telegram-bot's application (the Bot API client) and the webhook's registration."""

from __future__ import annotations

from typing import Any

from telegram.ext import AIORateLimiter, Application

from bots.telegram.transport import AiohttpRequest
from core.config import Settings

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


def build_application(
    settings: Settings, limiter: AIORateLimiter | None = None
) -> Application[Any, Any, Any, Any, Any, Any]:
    """PTB's application without an updater: we receive updates ourselves. Its requests go
    through aiohttp (bots.telegram.transport); getUpdates has a pool of its own."""
    token = settings.telegram_bot_token
    if token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    base = settings.telegram_api_base_url
    builder = (
        Application.builder()
        .token(token.get_secret_value())
        .base_url(base)
        .base_file_url(base[: -len("/bot")] + "/file/bot" if base.endswith("/bot") else base)
        .updater(None)
        .request(AiohttpRequest(connection_pool_size=64))
        .get_updates_request(AiohttpRequest(connection_pool_size=1))
    )
    if limiter is not None:
        builder = builder.rate_limiter(limiter)  # type: ignore[arg-type]
    return builder.build()


async def register_webhook(settings: Settings, url: str) -> dict[str, Any]:
    """`careline telegram set-webhook URL`: register it with the secret; return Telegram's view."""
    secret = settings.telegram_webhook_secret
    if secret is None:
        raise ValueError("TELEGRAM_WEBHOOK_SECRET is not set: Telegram would call us unsigned")
    async with build_application(settings) as application:
        await application.bot.set_webhook(
            url, secret_token=secret.get_secret_value(), allowed_updates=ALLOWED_UPDATES
        )
        info = await application.bot.get_webhook_info()
    return {
        "url": info.url,
        "pending_update_count": info.pending_update_count,
        "allowed_updates": list(info.allowed_updates or ()),
    }


async def unregister_webhook(settings: Settings) -> None:
    """Remove the webhook (e.g. before switching to polling)."""
    async with build_application(settings) as application:
        await application.bot.delete_webhook()
