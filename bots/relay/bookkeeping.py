"""The relay's delivery bookkeeping, group-committed: what running tasks need written
(deliveries begun, outcomes, rows settled) is flushed together in one transaction on a held
connection; its SQL is core/db/journal.py."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.db.database import Database
from core.db.journal import (
    Connection,
    DeliveryState,
    HeldConnection,
    begin_deliveries,
    outcome_row,
    record,
    settle_row,
)
from core.model import utcnow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Outcome:
    handler: str
    status: str  # done, skipped, failed, dead
    provider_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(slots=True)
class _Work:
    """What tasks want written; flushed together in one transaction."""

    begins: list[tuple[int, list[str], asyncio.Future[dict[str, DeliveryState]]]] = field(
        default_factory=list
    )
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    settles: list[tuple[dict[str, Any], asyncio.Future[None]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.begins or self.outcomes or self.settles)


class GroupJournal:
    """Group commit of delivery bookkeeping for one relay."""

    def __init__(self, db: Database, worker: str, lease: timedelta) -> None:
        self.db = db
        self.worker = worker
        self.lease = lease
        self._link = HeldConnection(db)
        self._work = _Work()
        self._unrecorded: list[dict[str, Any]] = []  # outcomes a failed flush did not write
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> bool:
        """Start the flusher unless it runs; True when this call started it."""
        if self._task is not None and not self._task.done():
            return False
        self._task = asyncio.create_task(self._flush_forever(), name="relay-journal")
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Record what was already sent before going: otherwise those deliveries stay
        # `sending` and are sent again once the lease expires.
        leftover, self._work = self._work, _Work()
        _fail(leftover, RuntimeError("the relay stopped"))
        outcomes, self._unrecorded = [*self._unrecorded, *leftover.outcomes], []
        if outcomes:
            try:
                await asyncio.wait_for(self._flush(_Work(outcomes=outcomes)), 5)
            except Exception as exc:
                log.warning("relay: %d delivery records not written at stop: %s",
                            len(outcomes), exc)  # fmt: skip
        await self._link.close()

    async def begin(self, event_id: int, handlers: list[str]) -> dict[str, DeliveryState]:
        future: asyncio.Future[dict[str, DeliveryState]] = (
            asyncio.get_running_loop().create_future()
        )
        self._work.begins.append((event_id, handlers, future))
        self._wake.set()
        return await future

    def outcome(self, event_id: int, result: Outcome) -> None:
        self._work.outcomes.append(
            outcome_row(
                event_id,
                result.handler,
                result.status,
                result.provider_id,
                result.error,
                result.next_attempt_at,
            )
        )
        self._wake.set()

    async def settle(self, row_id: int, status: str, available_at: datetime, error: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._work.settles.append((settle_row(row_id, status, available_at, error), future))
        self._wake.set()
        await future

    async def _flush_forever(self) -> None:
        while True:
            if self._unrecorded:
                # Retry recording sends that already happened, on their own: one write the
                # database refuses must not hold back every other delivery.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                await self._record_unrecorded()
            else:
                await self._wake.wait()
            self._wake.clear()
            work, self._work = self._work, _Work()
            if not work:
                continue
            try:
                await self._flush(work)
            except asyncio.CancelledError:
                self._unrecorded += work.outcomes
                _fail(work, RuntimeError("the relay stopped"))
                raise
            except Exception as exc:  # the database hiccupped: every waiter retries its row
                log.warning("relay: writing delivery records failed: %s", exc)
                # Messages already sent must still be recorded `done`, or they are sent again
                # when their lease expires: keep their outcomes and retry them.
                self._unrecorded += work.outcomes
                _fail(work, exc)

    async def _record_unrecorded(self) -> None:
        pending, self._unrecorded = self._unrecorded, []
        try:
            await self._flush(_Work(outcomes=pending))
        except Exception as exc:
            log.warning("relay: %d delivery records still not written: %s", len(pending), exc)
            self._unrecorded[:0] = pending

    async def _flush(self, work: _Work) -> None:
        states = await self._link.transaction(functools.partial(self._write, work))
        for event_id, _, future in work.begins:
            if not future.done():
                future.set_result(states.get(event_id, {}))
        for _, settled in work.settles:
            if not settled.done():
                settled.set_result(None)

    async def _write(self, work: _Work, conn: Connection) -> dict[int, dict[str, DeliveryState]]:
        now = utcnow()
        states: dict[int, dict[str, DeliveryState]] = {}
        if work.begins:
            pairs = [(event_id, name) for event_id, names, _ in work.begins for name in names]
            states = await begin_deliveries(conn, self.db.is_postgres, pairs, now, self.lease)
        settles = [values for values, _ in work.settles]
        await record(conn, self.worker, work.outcomes, settles, now)
        return states


def _fail(work: _Work, exc: BaseException) -> None:
    for _, _, begun in work.begins:
        if not begun.done():
            begun.set_exception(exc)
    for _, settled in work.settles:
        if not settled.done():
            settled.set_exception(exc)
