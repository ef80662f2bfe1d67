"""PostgreSQL's pool makes sure of a connection before each use: one whose socket the
server closed (a restart) is replaced before a statement meets it, one idle for a while is
pinged in one round trip (not SQLAlchemy's pre-ping, three on asyncpg), and one in steady
use goes straight to work."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

from core.db import database
from core.db.database import Database
from tests.support.pgcluster import PgCluster

pytestmark = pytest.mark.postgres


async def _select_one(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text("SELECT 1"))).scalar_one())


async def test_a_dead_pooled_connection_is_replaced_before_use(own_cluster: PgCluster) -> None:
    db = Database(own_cluster.url(), pool_size=1, max_overflow=0)
    try:
        assert await _select_one(db) == 1
        await asyncio.to_thread(own_cluster.restart_server)
        assert await _select_one(db) == 1  # no error: the closed one was replaced
    finally:
        await db.dispose()


async def test_a_live_pooled_connection_is_kept(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1, max_overflow=0)
    try:
        pids = []
        for _ in range(3):
            async with db.engine.connect() as conn:
                pids.append((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    finally:
        await db.dispose()

    assert len(set(pids)) == 1


async def test_only_a_connection_idle_for_a_while_is_pinged(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the pooled connection's backend last ran, seen from another connection: the
    ping's SELECT 1 only after the connection sat idle longer than the threshold."""
    db = Database(pg_url, pool_size=1, max_overflow=0)
    observer = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))

    async def last_query_after_checkout() -> str:
        async with db.engine.connect() as conn:
            await conn.get_raw_connection()  # checked out, nothing run by us
            return str(
                await observer.fetchval(
                    "SELECT query FROM pg_stat_activity WHERE pid = $1", backend
                )
            )

    try:
        async with db.engine.connect() as conn:
            backend = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        # In use just now: the last thing it ran is the pool's reset at check-in.
        assert await last_query_after_checkout() == "ROLLBACK;"

        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert await last_query_after_checkout() == "SELECT 1"
    finally:
        await observer.close()
        await db.dispose()
