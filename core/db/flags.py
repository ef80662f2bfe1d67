"""Runtime switches stored in the database, so every replica sees the same value."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import tables as t
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
