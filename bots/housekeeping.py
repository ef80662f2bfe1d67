"""Upkeep that runs beside the relay: auto-assignment, SLA breaches, auto-close, retention.

Every relay process runs it; on PostgreSQL each job takes a transaction-level advisory lock
first, so with several relays one does the work and the others skip that round. Each job is
one unit of work: its changes and the events they cause (notices, Slack updates) commit
together.

Retention keeps the reliable-messaging tables from growing without end: once an hour, inbox
rows and sent outbox events older than `retention_days` are deleted in small batches (their
platforms stopped redelivering long before). Parked deliveries and dead notices stay until
a human deals with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bots.relay import Delivery, Handlers
from core import events, services
from core.config import Settings
from core.db.database import Database, SqlUnitOfWork
from core.db.flags import AUTO_ASSIGN, read_flag
from core.db.ratelimit import forget_ended_windows
from core.db.retention import prune_before, try_job_lock
from core.errors import Conflict
from core.model import utcnow
from core.policy import SlaPolicy

log = logging.getLogger("careline.housekeeping")

# Arbitrary but fixed advisory-lock keys, one per job.
LOCKS = {"auto_assign": 7_301_001, "sla": 7_301_002, "auto_close": 7_301_003}

PRUNE_EVERY = 3600.0  # seconds between retention rounds
PRUNE_BATCH = 1000  # rows per delete: short transactions, turns run in between


class Housekeeping:
    def __init__(self, db: Database, settings: Settings, *, interval: float = 30.0) -> None:
        self.db = db
        self.settings = settings
        self.interval = interval
        self.sla = SlaPolicy.from_hours(settings.sla_hours)
        self._pruned_at: float | None = None

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
            "rate_limit_windows_ended": await forget_ended_windows(self.db),
            **await self._prune_hourly(),
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

    async def _prune_hourly(self) -> dict[str, int]:
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return {}
        pruned = await self.prune()  # a failed round (database down) is retried next tick
        self._pruned_at = now
        return pruned

    async def prune(self) -> dict[str, int]:
        """Delete inbox rows and sent notices older than `retention_days`; how many of each."""
        if self.settings.retention_days <= 0:
            return {"inbox_pruned": 0, "outbox_pruned": 0}
        cutoff = utcnow() - timedelta(days=self.settings.retention_days)
        inbox, outbox = await prune_before(self.db, cutoff, batch=PRUNE_BATCH)
        if inbox or outbox:
            log.info("retention: deleted %d inbox rows and %d sent events", inbox, outbox)
        return {"inbox_pruned": inbox, "outbox_pruned": outbox}

    async def _job(self, name: str, work: Callable[[SqlUnitOfWork], Awaitable[int]]) -> int:
        try:
            async with self.db.uow() as uow:
                if not await try_job_lock(uow, LOCKS[name]):
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
