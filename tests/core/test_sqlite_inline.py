"""SQLite statements run on the event loop's thread, with the transaction semantics intact."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from core.db.database import Database


async def test_statements_run_on_the_event_loop_thread(sqlite_db: Database) -> None:
    threads: list[int] = []
    async with sqlite_db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        await conn.run_sync(lambda _: None)
        raw.driver_connection._conn.create_function(  # type: ignore[union-attr]
            "whoami", 0, lambda: threads.append(threading.get_ident()) or 1
        )
        await conn.execute(text("SELECT whoami()"))
    assert threads == [threading.get_ident()]


async def test_a_unit_of_work_takes_the_write_lock_at_begin(sqlite_db: Database) -> None:
    path = sqlite_db.sqlite_path
    assert path is not None
    async with sqlite_db.engine.begin() as conn:
        await conn.execute(text("SELECT 1"))
        # Another writer is refused at once: BEGIN IMMEDIATE, not a deferred transaction.
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


async def test_a_failed_transaction_rolls_back_and_the_connection_is_reused(
    sqlite_db: Database,
) -> None:
    async with sqlite_db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))

    async def twice() -> None:
        async with sqlite_db.engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))

    with pytest.raises(IntegrityError):
        await twice()
    async with sqlite_db.engine.begin() as conn:
        await conn.execute(text("INSERT INTO t VALUES (2)"))
    async with sqlite_db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT k FROM t"))).scalars().all()
    assert rows == [2]


async def test_concurrent_units_of_work_take_turns(sqlite_db: Database) -> None:
    async with sqlite_db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE c (n INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO c VALUES (0)"))

    async def bump() -> None:
        async with sqlite_db.uow() as uow:
            n = (await uow.session.execute(text("SELECT n FROM c"))).scalar_one()
            await asyncio.sleep(0)  # a real suspension inside the transaction
            await uow.session.execute(text("UPDATE c SET n = :n"), {"n": n + 1})
            await uow.commit()

    await asyncio.gather(*(bump() for _ in range(50)))
    async with sqlite_db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT n FROM c"))).scalar_one() == 50


async def test_a_missing_folder_is_created(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/a/b/careline.db")
    try:
        await db.ping()
    finally:
        await db.dispose()
    assert (tmp_path / "a" / "b" / "careline.db").exists()
