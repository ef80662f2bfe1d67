"""Ticket upkeep that runs beside the relay: auto-assignment, SLA breaches, auto-close.

Every relay process runs it; on PostgreSQL each job takes a transaction-level advisory lock
first, so with several relays one does the work and the others skip that round. Each job is
one unit of work: its changes and the events they cause (notices, Slack updates) commit
together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from bots.relay import Delivery, Handlers
from core import events, services
from core.config import Settings
from core.db.database import Database, SqlUnitOfWork
from core.db.flags import AUTO_ASSIGN, read_flag
from core.errors import Conflict
from core.policy import SlaPolicy

log = logging.getLogger("careline.housekeeping")

# Arbitrary but fixed advisory-lock keys, one per job.
LOCKS = {"auto_assign": 7_301_001, "sla": 7_301_002, "auto_close": 7_301_003}


class Housekeeping:
    def __init__(self, db: Database, settings: Settings, *, interval: float = 30.0) -> None:
        self.db = db
        self.settings = settings
        self.interval = interval
        self.sla = SlaPolicy.from_hours(settings.sla_hours)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # a failed round is retried next round; never stop upkeep
                log.exception("housekeeping round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def tick(self) -> dict[str, int]:
        return {
            "assigned": await self.auto_assign(),
            "sla_breaches": await self._job("sla", self._announce),
            "auto_closed": await self._job("auto_close", self._close),
        }

    async def auto_assign(self) -> int:
        async def assign(uow: SqlUnitOfWork) -> int:
            if not await read_flag(uow.session, AUTO_ASSIGN, self.settings.auto_assign):
                return 0
            return len(await services.auto_assign(uow))

        return await self._job("auto_assign", assign)

    async def _announce(self, uow: SqlUnitOfWork) -> int:
        return len(await services.announce_sla_breaches(uow))

    async def _close(self, uow: SqlUnitOfWork) -> int:
        after = timedelta(days=self.settings.auto_close_days)
        return len(await services.auto_close_resolved(uow, after=after))

    async def _job(self, name: str, work: Callable[[SqlUnitOfWork], Awaitable[int]]) -> int:
        try:
            async with self.db.uow() as uow:
                if self.db.is_postgres:
                    got = await uow.session.scalar(
                        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCKS[name]}
                    )
                    if not got:
                        return 0  # another relay is on it
                done = await work(uow)
                await uow.commit()
                return done
        except Conflict:
            return 0  # a ticket changed under us: the next round picks it up

    def register(self, handlers: Handlers) -> None:
        """Assign promptly when a ticket enters the queue, not only on the next round."""

        async def assign_now(_: Delivery) -> Any:
            await self.auto_assign()
            return None

        for event in (events.TicketOpened, events.TicketUnassigned, events.HumanRequested):
            handlers.add(event, "housekeeping.auto_assign", assign_now)
