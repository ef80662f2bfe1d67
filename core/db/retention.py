"""Upkeep's SQL: a job's advisory lock, and retention's batched deletes."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import ColumnElement, Table, delete, func, select, text

from core.db import tables as t
from core.db.database import Database, SqlUnitOfWork


async def try_job_lock(uow: SqlUnitOfWork, key: int) -> bool:
    """On PostgreSQL, a transaction-level advisory lock on `key`: False when another process
    holds it (it does the job this round). SQLite serves one process: always True."""
    if uow.session.get_bind().dialect.name != "postgresql":
        return True
    got = await uow.session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
    return bool(got)


async def prune_before(db: Database, cutoff: datetime, *, batch: int) -> tuple[int, int]:
    """Delete inbox rows received and sent events made available before `cutoff`, in
    batches of `batch` rows per transaction; (inbox rows, events) deleted. Parked deliveries,
    unsent events and the newest event stay."""
    i, o = t.inbox.c, t.outbox.c
    # SQLite reuses the largest rowid once it is deleted, and an event id is part of its
    # notices' idempotency keys: the newest event always stays.
    newest = select(func.max(o.id)).scalar_subquery()
    inbox = await _prune(db, t.inbox, (i.received_at < cutoff) & (i.status != "parked"), batch)
    outbox = await _prune(
        db, t.outbox, (o.status == "done") & (o.available_at < cutoff) & (o.id < newest), batch
    )
    return inbox, outbox


async def _prune(db: Database, table: Table, old: ColumnElement[bool], batch: int) -> int:
    """Delete the rows matching `old`, a batch per transaction (deliveries cascade)."""
    total = 0
    while True:
        ids = select(table.c.id).where(old).order_by(table.c.id).limit(batch)
        async with db.engine.begin() as conn:
            result = await conn.execute(delete(table).where(table.c.id.in_(ids)))
        total += result.rowcount
        if result.rowcount < batch:
            return total
        await asyncio.sleep(0)  # let waiting turns in between batches
