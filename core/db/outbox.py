"""Claiming outbox rows safely from one or many relay workers.

PostgreSQL: `FOR UPDATE SKIP LOCKED` leases, so several relays never take the same row.
SQLite: SKIP LOCKED is silently ignored there, so a claim is one atomic
`UPDATE ... RETURNING` under `BEGIN IMMEDIATE`, and only one process may run a relay
(an exclusive lock file beside the database) rather than risk delivering twice.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.db import tables as t
from core.db.database import Database
from core.model import utcnow

o = t.outbox.c


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_type: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


class RelayLockHeld(RuntimeError):
    pass


async def claim(
    db: Database,
    worker: str,
    *,
    limit: int = 50,
    lease: timedelta = timedelta(seconds=60),
    conn: AsyncConnection | None = None,
) -> list[OutboxRow]:
    """Lease up to `limit` due rows to `worker`; an expired lease makes a row claimable again.

    With `conn` the claim joins the caller's open transaction (the relay marks the claimed
    rows' deliveries `sending` in the same one); otherwise it commits on its own.
    """
    now = utcnow()
    due = and_(
        o.status == "pending",
        o.available_at <= now,
        or_(o.locked_until.is_(None), o.locked_until < now),
    )
    pick = select(o.id).where(due).order_by(o.id).limit(limit)
    if db.is_postgres:
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(t.outbox)
        .where(o.id.in_(pick.scalar_subquery()))
        .values(locked_by=worker, locked_until=now + lease, attempts=o.attempts + 1)
        .returning(o.id, o.event_type, o.payload, o.attempts, o.created_at)
    )
    if conn is not None:
        rows = [OutboxRow(*r) for r in (await conn.execute(stmt)).all()]
    else:
        async with db.engine.begin() as own:
            rows = [OutboxRow(*r) for r in (await own.execute(stmt)).all()]
    rows.sort(key=lambda r: r.id)
    return rows


async def finish(db: Database, row_id: int, worker: str) -> bool:
    """Mark a row done; False when the lease was lost to another worker."""
    async with db.engine.begin() as conn:
        result = await conn.execute(
            update(t.outbox)
            .where(o.id == row_id, o.locked_by == worker)
            .values(status="done", processed_at=utcnow(), locked_by=None, locked_until=None)
        )
    return bool(result.rowcount)


async def retry_later(
    db: Database, row_id: int, worker: str, *, at: datetime, error: str, dead: bool = False
) -> bool:
    """Give a row back for a later attempt, or park it as dead with its reason."""
    async with db.engine.begin() as conn:
        result = await conn.execute(
            update(t.outbox)
            .where(o.id == row_id, o.locked_by == worker)
            .values(
                status="dead" if dead else "pending",
                available_at=at,
                locked_by=None,
                locked_until=None,
                last_error=error[:2000],
            )
        )
    return bool(result.rowcount)


class SqliteRelayLock:
    """Exclusive, crash-safe (the OS drops it on kill -9) lock for the one SQLite relay.

    With `what="server"` it is the lock of the one `careline serve` process on a SQLite file.
    """

    def __init__(self, db_path: Path, what: str = "relay") -> None:
        self.path = db_path.with_name(f"{db_path.name}.{what}.lock")
        self.what = what
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            database = self.path.name.removesuffix(f".{self.what}.lock")
            raise RelayLockHeld(
                f"another process already runs the {self.what} on {database}; SQLite "
                f"allows one {self.what} process (use PostgreSQL for several)"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


@dataclass(frozen=True, slots=True)
class SentNotice:
    """A delivery a provider's message id names: its event and handler."""

    event_id: int
    event_type: str
    payload: dict[str, Any]
    handler: str


async def sent_as(session: AsyncSession, provider_id: str) -> SentNotice | None:
    """The delivery whose provider message id is `provider_id` (a delivery report's)."""
    d = t.outbox_deliveries.c
    row = (
        await session.execute(
            select(o.id, o.event_type, o.payload, d.handler)
            .join(t.outbox, o.id == d.event_id)
            .where(d.provider_id == provider_id)
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return SentNotice(int(row[0]), str(row[1]), dict(row[2] or {}), str(row[3]))


async def note_report(session: AsyncSession, provider_id: str, report: str) -> None:
    """Write what the provider reported later (undelivered, and why) on its delivery."""
    d = t.outbox_deliveries.c
    await session.execute(
        update(t.outbox_deliveries)
        .where(d.provider_id == provider_id)
        .values(last_error=report[:2000], updated_at=utcnow())
    )


async def event_by_id(db: Database, event_id: int) -> tuple[str, dict[str, Any]] | None:
    """An outbox event's type and payload, or None once retention deleted it."""
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(o.event_type, o.payload).where(o.id == event_id))).first()
    return (str(row[0]), dict(row[1] or {})) if row is not None else None


async def other_handlers(
    session: AsyncSession, event_id: int, *, excluding: str
) -> list[tuple[str, str]]:
    """(status, last error) of an event's deliveries to the handlers whose names do not
    start with `excluding`."""
    d = t.outbox_deliveries.c
    rows = await session.execute(
        select(d.status, d.last_error).where(
            d.event_id == event_id, ~d.handler.startswith(excluding)
        )
    )
    return [(status, error or "") for status, error in rows.all()]
