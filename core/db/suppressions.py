"""Email addresses SendGrid reported as bounced, dropped or spam: never mailed again."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import tables as t
from core.db.database import Database
from core.model import utcnow

s = t.email_suppressions.c


async def is_suppressed(db: Database, address: str) -> bool:
    """True when SendGrid told us this address bounced, was dropped or reported spam."""
    async with db.engine.connect() as conn:
        found = await conn.execute(select(s.email).where(s.email == address.strip().lower()))
        return found.first() is not None


async def suppress(session: AsyncSession, address: str, reason: str) -> None:
    """Suppress `address` (lower-cased) and block it on every customer who gave it."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(t.email_suppressions)
        .values(email=address, reason=reason, created_at=utcnow())
        .on_conflict_do_nothing()
    )
    await session.execute(
        update(t.customers)
        .where(func.lower(t.customers.c.email) == address)
        .values(email_blocked=True)
    )
