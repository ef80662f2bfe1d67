"""API keys in the database: created, looked up by hash, listed and revoked.

What a key is and who a caller is: core/access.py.
"""

from __future__ import annotations

import hmac
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.access import (
    KEY_PREFIX,
    LAST_USED_RESOLUTION,
    ROLES,
    SHOWN_PREFIX_CHARS,
    Caller,
    NewKey,
    hash_key,
    new_secret,
)
from core.db import tables as t
from core.db.database import Database
from core.errors import InvalidInput, NotFound
from core.model import utcnow


async def create_key(
    session: AsyncSession, *, name: str, role: str, agent_id: int | None = None
) -> NewKey:
    """Store a new key (the caller commits) and return it with its secret, once."""
    name = name.strip()
    if not name:
        raise InvalidInput("a key needs a name")
    if role not in ROLES:
        raise InvalidInput(f"a key's role is admin or agent, not {role!r}")
    if role == "agent":
        if agent_id is None:
            raise InvalidInput("an agent key needs the agent's id")
        agent_active = await session.scalar(
            select(t.agents.c.active).where(t.agents.c.id == agent_id)
        )
        if agent_active is None:
            raise NotFound(f"there is no agent {agent_id}")
    elif agent_id is not None:
        raise InvalidInput("an admin key is not linked to an agent")
    secret = new_secret()
    now = utcnow()
    key_id = await session.scalar(
        insert(t.api_keys)
        .values(
            name=name[:100],
            role=role,
            prefix=secret[:SHOWN_PREFIX_CHARS],
            key_hash=hash_key(secret),
            agent_id=agent_id,
            created_at=now,
        )
        .returning(t.api_keys.c.id)
    )
    assert key_id is not None
    return NewKey(
        id=int(key_id),
        key=secret,
        prefix=secret[:SHOWN_PREFIX_CHARS],
        name=name[:100],
        role=role,
        agent_id=agent_id,
        created_at=now,
    )


async def authenticate(session: AsyncSession, presented: str) -> Caller | None:
    """The caller behind a presented key, or None (unknown, revoked, or agent gone)."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    digest = hash_key(presented)
    k = t.api_keys.c
    row = (
        await session.execute(
            select(
                k.id, k.name, k.role, k.agent_id, k.key_hash, k.last_used_at, k.revoked_at
            ).where(k.key_hash == digest)
        )
    ).one_or_none()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
        return None
    if row.role not in ROLES or (row.role == "agent" and row.agent_id is None):
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(update(t.api_keys).where(k.id == row.id).values(last_used_at=now))
        # Committed on its own: most requests are reads that never commit.
        await session.commit()
    return Caller(name=row.name, role=row.role, agent_id=row.agent_id, key_id=int(row.id))


async def list_keys(session: AsyncSession) -> list[dict[str, Any]]:
    """Every key, oldest first, without its hash."""
    k = t.api_keys.c
    rows = await session.execute(
        select(k.id, k.name, k.role, k.prefix, k.agent_id, k.created_at, k.last_used_at,
               k.revoked_at).order_by(k.id)
    )  # fmt: skip
    return [dict(r._mapping) for r in rows]


async def revoke_key(session: AsyncSession, key_id: int) -> None:
    result = await session.execute(
        update(t.api_keys)
        .where(t.api_keys.c.id == key_id, t.api_keys.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"there is no active key {key_id}")


async def ensure_bootstrap_admin_key(db: Database) -> str | None:
    """Create one admin key when none exists yet and return its secret (print it once).

    Returns None when any key exists. Replicas starting together create at most one key:
    PostgreSQL takes a transaction advisory lock, SQLite's BEGIN IMMEDIATE serialises.
    """
    async with db.sessions() as session:
        if db.is_postgres:
            await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('careline_keys'))"))
        existing = await session.scalar(select(func.count()).select_from(t.api_keys))
        if existing:
            return None
        new = await create_key(session, name="bootstrap admin", role="admin")
        await session.commit()
        return new.key
