"""SMS (Twilio): customers text the support number; notices reach them by text.

One package behind the channel contract (bots.channels.ChannelPlug): `Sms` holds the REST client
(`api`), the outbound `ChatChannel` (`channel`) the relay's notices use, the inbound
webhooks (`inbound`) and the calls about urgent news (`calls`). `build_sms` makes it
without I/O; the server starts it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from bots.channels import Mail, PlugStart
from bots.metrics import Metrics
from bots.relay import Handlers
from bots.sms.api import TwilioApi
from bots.sms.calls import SmsCalls
from bots.sms.channel import SmsChannel
from bots.sms.inbound import SMS_PATH, STATUS_PATH, SmsInbound
from core.config import Settings
from core.db.database import Database
from core.db.pacing import SqlPacer
from core.db.sms import SmsMenus
from core.ports import FileStore

__all__ = ["SMS_PATH", "STATUS_PATH", "Sms", "build_sms"]


@dataclass
class Sms:
    api: TwilioApi
    channel: SmsChannel
    inbound: SmsInbound
    calls: SmsCalls
    mail: Mail | None = None  # a chat, not the mail

    def routes(self) -> list[Any]:
        return [self.inbound.router()]

    def register(self, handlers: Handlers) -> None:
        self.calls.register(handlers)

    async def start(self, start: PlugStart) -> list[asyncio.Task[None]]:
        """Ask for delivery reports (with a public URL); where texts are received, take up
        those left unfinished."""
        self.inbound.engine = start.engine
        if start.public_url:
            self.api.status_url = start.public_url.rstrip("/") + STATUS_PATH
        if not start.receives:
            return []
        replay = self.inbound.replay_forever(start.stopping)
        return [asyncio.create_task(replay, name="sms-replay")]

    async def stop(self, grace: float) -> None:
        await self.inbound.drain(grace)
        await self.api.close()


def build_sms(
    settings: Settings, db: Database, metrics: Metrics, files: FileStore | None = None
) -> Sms:
    api = TwilioApi(settings, pacer=SqlPacer(db) if db.is_postgres else None)
    channel = SmsChannel(api, SmsMenus(db), max_segments=settings.sms_max_segments)
    calls = SmsCalls(db, api, quiet=settings.call_quiet_hours)
    inbound = SmsInbound(db, settings, channel, metrics, files=files)
    return Sms(api, channel, inbound, calls)
