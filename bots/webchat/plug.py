"""The web chat as a channel plug: its routes, its outbound channel, started with the engine."""

from __future__ import annotations

import asyncio
from typing import Any

from itsdangerous import URLSafeTimedSerializer

from bots.channels import Mail, PlugBuild, PlugStart
from bots.webchat.limits import WebChatLimits
from bots.webchat.lines import WebChatChannel, WebChatLines
from bots.webchat.routes import WebChat, visitor_tickets, webchat_router
from bots.webchat.visitors import Visitors, allowed_origins


class WebChatPlug:
    """The web chat as a channel plug (bots.channels.ChannelPlug): its page, API and socket,
    and the channel that writes notices into visitors' conversations (every role)."""

    def __init__(self, build: PlugBuild) -> None:
        settings, db = build.settings, build.db
        self.settings = settings
        self.chat = WebChat(
            db=db,
            engine=None,
            lines=WebChatLines(db),
            visitors=None,
            files=build.files,
            max_upload_bytes=settings.max_upload_bytes,
            max_text_chars=settings.max_text_chars,
            # Several processes share PostgreSQL: notice lines other replicas stored.
            poll_seconds=1.0 if db.is_postgres else None,
            tickets_of=lambda visitor: visitor_tickets(db, visitor),
            allowed_origins=allowed_origins(settings.webchat_allowed_origins, settings.public_url),
            limits=WebChatLimits.from_settings(settings, db),
        )
        self._channel = WebChatChannel(self.chat.lines)

    mail: Mail | None = None

    @property
    def channel(self) -> WebChatChannel:
        return self._channel

    def routes(self) -> list[Any]:
        return [webchat_router(self.chat)]

    def register(self, handlers: Any) -> None:
        """The web chat's notices are the customer notices' (bots.notices): nothing more."""

    async def start(self, start: PlugStart) -> list[asyncio.Task[None]]:
        if start.receives:
            self.chat.engine = start.engine
            self.chat.visitors = Visitors(
                URLSafeTimedSerializer(start.secret, salt="careline-webchat"),
                max_age=self.settings.webchat_token_max_age_days * 24 * 3600,
            )
        return []

    async def stop(self, grace: float) -> None:
        """Nothing of its own to stop: its sockets close with the server."""
