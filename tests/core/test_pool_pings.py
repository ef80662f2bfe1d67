"""PostgreSQL's pool makes sure of a connection before each use, in one round trip (not
SQLAlchemy's pre-ping, three on asyncpg): a restarted server's dead connections are
replaced before a statement meets them."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

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
        assert await _select_one(db) == 1  # no error: the ping found the pooled one dead
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
