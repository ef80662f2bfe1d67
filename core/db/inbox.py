"""Inbound deliveries recorded under the platform's unique key before they are processed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import tables as t
from core.model import utcnow

i = t.inbox.c


async def record(
    session: AsyncSession, source: str, key: str, payload: dict[str, Any] | None = None
) -> bool:
    """Record a delivery; False when the key was seen before (a redelivery)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {
        "source": source,
        "key": key,
        "status": "pending",
        "payload": payload,
        "received_at": utcnow(),
        "attempts": 0,
    }
    stmt = insert(t.inbox).values(**values).on_conflict_do_nothing().returning(i.id)
    return (await session.execute(stmt)).first() is not None


async def status_of(session: AsyncSession, source: str, key: str) -> str | None:
    stmt = select(i.status).where(i.source == source, i.key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def payload_of(session: AsyncSession, source: str, key: str) -> dict[str, Any] | None:
    stmt = select(i.payload).where(i.source == source, i.key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def mark(
    session: AsyncSession, source: str, key: str, status: str, error: str | None = None
) -> None:
    """Set a delivery's status: done, or parked with the reason it can never succeed."""
    await session.execute(
        update(t.inbox)
        .where(i.source == source, i.key == key)
        .values(status=status, error=error[:2000] if error else None, done_at=utcnow())
    )


async def claim(session: AsyncSession, source: str, key: str, lease: timedelta) -> int | None:
    """Claim an unfinished delivery for `lease`: its attempt number, or None.

    One conditional UPDATE, so of two copies racing (in this process or on another replica)
    exactly one wins; None when the delivery is finished or another copy holds the claim.
    """
    now = utcnow()
    stmt = (
        update(t.inbox)
        .where(
            i.source == source,
            i.key == key,
            i.status == "pending",
            or_(i.claimed_until.is_(None), i.claimed_until < now),
        )
        .values(claimed_until=now + lease, attempts=i.attempts + 1)
        .returning(i.attempts)
    )
    attempt = (await session.execute(stmt)).scalar_one_or_none()
    return int(attempt) if attempt is not None else None


async def release(session: AsyncSession, source: str, key: str) -> None:
    """Give a claim back after a failed attempt, so that the next copy runs at once."""
    await session.execute(
        update(t.inbox)
        .where(i.source == source, i.key == key, i.status == "pending")
        .values(claimed_until=None)
    )


async def keep(session: AsyncSession, source: str, key: str, payload: dict[str, Any]) -> None:
    """Replace an unfinished delivery's payload (what a later attempt resumes from)."""
    await session.execute(
        update(t.inbox)
        .where(i.source == source, i.key == key, i.status == "pending")
        .values(payload=payload)
    )


async def pending(
    session: AsyncSession, source: str, older_than: timedelta, limit: int
) -> list[tuple[str, dict[str, Any] | None]]:
    """Unfinished deliveries nobody holds, received before `older_than` ago: (key, payload)."""
    now = utcnow()
    rows = await session.execute(
        select(i.key, i.payload)
        .where(
            i.source == source,
            i.status == "pending",
            i.received_at < now - older_than,
            or_(i.claimed_until.is_(None), i.claimed_until < now),
        )
        .order_by(i.id)
        .limit(limit)
    )
    return [(str(key), payload) for key, payload in rows.all()]
