"""Helpers for relay tests: outbox rows straight into the table, and reading the results."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, text

from core.db import tables as t
from core.db.database import OUTBOX_CHANNEL, Database
from core.events import Event
from core.model import utcnow


async def put_events(db: Database, events: list[Event]) -> list[int]:
    """Write events to the outbox as a unit of work's commit would; return their row ids."""
    now = utcnow()
    rows = [
        {
            "event_type": e.name,
            "payload": e.to_payload(),
            "status": "pending",
            "created_at": now,
            "available_at": now,
            "attempts": 0,
        }
        for e in events
    ]
    async with db.engine.begin() as conn:
        result = await conn.execute(insert(t.outbox).returning(t.outbox.c.id), rows)
        ids = [int(r[0]) for r in result.all()]
        if db.is_postgres:
            await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
    return sorted(ids)


async def deliveries(db: Database) -> dict[tuple[int, str], dict[str, Any]]:
    d = t.outbox_deliveries.c
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(t.outbox_deliveries))).mappings().all()
    return {(int(r[d.event_id.name]), r[d.handler.name]): dict(r) for r in rows}


async def outbox_rows(db: Database) -> dict[int, dict[str, Any]]:
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(t.outbox))).mappings().all()
    return {int(r["id"]): dict(r) for r in rows}


async def drain(relay: Any, *, rounds: int = 50) -> None:
    """Work the outbox until a claim comes back empty."""
    for _ in range(rounds):
        if await relay.drain_once() == 0:
            return
    raise AssertionError("the outbox did not drain")
