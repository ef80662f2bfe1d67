"""Email as a plug: the notices' transport (SendGrid, or the local mailbox), SendGrid's Event
Webhook and Inbound Parse routes, and the tickets' reply addresses, keyed by the server's
secret at start."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from bots.channels import Mail, PlugBuild, PlugStart
from bots.email.events import sendgrid_events_router
from bots.email.inbound import ReplyAddresses, email_inbound_router
from bots.email.senders import build_email


class EmailPlug:
    """Not a chat (`channel` is None): the server hands its `mail` to the customer notices."""

    channel: None = None

    def __init__(self, build: PlugBuild) -> None:
        self.settings = build.settings
        self.db = build.db
        self.sender = build_email(build.settings)
        self.reply_addresses: ReplyAddresses | None = None  # with a reply domain, once started

    @property
    def mail(self) -> Mail:
        addresses = self.reply_addresses
        return Mail(self.sender, addresses.for_ticket if addresses is not None else None)

    def routes(self) -> list[Any]:
        settings = self.settings
        return [
            sendgrid_events_router(self.db, settings.sendgrid_webhook_public_key),
            email_inbound_router(
                self.db,
                lambda: self.reply_addresses,
                settings.sendgrid_inbound_public_key,
                timedelta(days=settings.reopen_window_days),
            ),
        ]

    def register(self, handlers: Any) -> None:
        """Email's handlers are the customer notices' (bots.notices): nothing more."""

    async def start(self, start: PlugStart) -> list[asyncio.Task[None]]:
        domain = self.settings.email_reply_domain
        if domain:
            self.reply_addresses = ReplyAddresses.keyed(domain, start.secret)
        return []

    async def stop(self, grace: float) -> None:
        """Nothing to stop: each email is one request."""
