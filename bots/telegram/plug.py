"""Telegram as a channel plug: the webhook route, and the bot built at start with the engine,
reconnecting in the background while Telegram is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from bots.channels import (
    Mail,
    PlugBuild,
    PlugStart,
    TurnEngine,
)
from bots.plugs import TELEGRAM_WEBHOOK_PATH
from bots.telegram.bot import TelegramBot
from bots.telegram.channel import TelegramChannel

log = logging.getLogger("careline.telegram")


class TelegramPlug:
    """Telegram as a channel plug (bots.channels.ChannelPlug): the webhook route, the bot
    built at start with the engine, reconnecting in the background while Telegram is down."""

    def __init__(self, build: PlugBuild) -> None:
        self.build = build
        self.bot: TelegramBot | None = None  # built at start, its channel works at once
        self.connected = False  # the webhook answers 503 until then: Telegram retries

    mail: Mail | None = None

    @property
    def channel(self) -> TelegramChannel:
        assert self.bot is not None, "the plug is started before its channel is used"
        return self.bot.channel

    def routes(self) -> list[Any]:
        if self.build.settings.telegram_mode != "webhook":
            return []
        router = APIRouter(include_in_schema=False)
        # A plain route: the body is read raw and checked by the adapter, no validation layer.
        router.add_route(TELEGRAM_WEBHOOK_PATH, self.webhook, methods=["POST"])
        return [router]

    async def webhook(self, request: Request) -> Response:
        if self.bot is None or not self.connected:  # Telegram was unreachable at start
            return Response(status_code=503)
        return await self.bot.webhook(request)

    def register(self, handlers: Any) -> None:
        """Telegram's notices are the customer notices' (bots.notices): nothing more."""

    async def start(self, start: PlugStart) -> list[asyncio.Task[None]]:
        b = self.build
        engine = cast(TurnEngine, start.engine)  # None in the relay role, which only sends
        self.bot = TelegramBot(b.settings, b.db, engine, b.metrics, files=b.files)
        try:
            if start.receives:
                await self.bot.start()
            else:  # the relay role only sends: no webhook, no polling
                await self.bot.application.initialize()
        except Exception as exc:
            # Telegram down must not take the admin API and Slack down with it: keep trying.
            log.error(
                "Telegram is unreachable (%s); retrying in the background", type(exc).__name__
            )
            retry = self._reconnect(start.stopping)
            return [asyncio.create_task(retry, name="telegram-connect")]
        self.connected = True
        return []

    async def _reconnect(self, stopping: asyncio.Event) -> None:
        assert self.bot is not None
        delay = 2.0
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
                return
            try:
                await self.bot.start()
            except Exception as exc:
                log.warning("Telegram still unreachable (%s)", type(exc).__name__)
                delay = min(delay * 2, 60)
                continue
            self.connected = True
            log.info("connected to Telegram")
            return

    async def stop(self, grace: float) -> None:
        if self.bot is not None:
            await self.bot.stop()
