"""Runtime switches stored in the database, so every replica sees the same value."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import tables as t
from core.db.database import Database
from core.model import utcnow

AUTO_ASSIGN = "auto_assign"


async def read_flag(session: AsyncSession, name: str, default: Any) -> Any:
    value = await session.scalar(
        select(t.settings_flags.c.value).where(t.settings_flags.c.name == name)
    )
    return default if value is None else value


async def write_flag(session: AsyncSession, name: str, value: Any) -> None:
    now = utcnow()
    changed = await session.execute(
        update(t.settings_flags)
        .where(t.settings_flags.c.name == name)
        .values(value=value, updated_at=now)
    )
    if not getattr(changed, "rowcount", 0):
        await session.execute(
            insert(t.settings_flags).values(name=name, value=value, updated_at=now)
        )


async def load_or_create_secret(db: Database, configured: str | None) -> str:
    """The server's signing secret: from settings, else one generated once and shared by
    every replica through the database."""
    if configured:
        return configured
    name = "webchat_secret"
    insert_ = postgresql.insert if db.is_postgres else sqlite.insert
    async with db.engine.begin() as conn:
        await conn.execute(
            insert_(t.settings_flags)
            .values(name=name, value={"secret": secrets.token_urlsafe(32)}, updated_at=utcnow())
            .on_conflict_do_nothing()
        )
        value = (
            await conn.execute(
                select(t.settings_flags.c.value).where(t.settings_flags.c.name == name)
            )
        ).scalar_one()
    return str(value["secret"])
