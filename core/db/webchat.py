"""The web chat's stored conversations: each visitor's lines, in and out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from core.db import tables as t
from core.db.database import Database
from core.model import utcnow

w = t.webchat_messages.c


async def add_line(db: Database, visitor_id: str, direction: str, body: dict[str, Any]) -> int:
    """Store one line in its own transaction; its id."""
    async with db.engine.begin() as conn:
        result = await conn.execute(
            insert(t.webchat_messages)
            .values(visitor_id=visitor_id, direction=direction, body=body, created_at=utcnow())
            .returning(w.id)
        )
        return int(result.scalar_one())


async def lines_since(
    db: Database, visitor_id: str, after: int, limit: int
) -> list[dict[str, Any]]:
    """The visitor's lines after id `after`, oldest first; with `after` 0, the newest `limit`."""
    stmt = (
        select(w.id, w.direction, w.body, w.created_at)
        .where(w.visitor_id == visitor_id, w.id > after)
        .order_by(w.id.desc() if after == 0 else w.id)
        .limit(limit)
    )
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    if after == 0:
        rows = list(reversed(rows))
    return [
        {"id": r.id, "direction": r.direction, "at": r.created_at.isoformat(), **r.body}
        for r in rows
    ]
