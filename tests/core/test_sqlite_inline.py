"""SQLite statements run on the event loop's thread, with the transaction semantics intact."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
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


def hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> threading.Thread:
    """Another connection takes SQLite's write lock in a thread and keeps it for `seconds`."""

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait(5)
    return thread


async def test_a_unit_of_work_waits_for_a_held_lock_while_the_loop_runs_on(
    sqlite_db: Database,
) -> None:
    path = sqlite_db.sqlite_path
    assert path is not None
    async with sqlite_db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE w (k INTEGER)"))
    holder = hold_write_lock(path, 0.5, threading.Event())
    started = time.monotonic()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    async with sqlite_db.uow() as uow:
        await uow.session.execute(text("INSERT INTO w VALUES (1)"))
        await uow.commit()
    waited = time.monotonic() - started
    ticker.cancel()
    holder.join()
    assert waited >= 0.4  # it waited for the other connection's commit
    assert ticks >= 20  # and the loop kept running meanwhile (a blocked loop ticks once)


async def test_a_lock_held_longer_than_the_busy_timeout_raises_database_is_locked(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/careline.db", busy_timeout_ms=200)
    try:
        await db.ping()
        holder = hold_write_lock(tmp_path / "careline.db", 1.0, threading.Event())
        started = time.monotonic()
        # As before: raised by BEGIN IMMEDIATE in SQLAlchemy's "begin" event, so unwrapped.
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await db.ping()
        gave_up_after = time.monotonic() - started
        holder.join()
        await db.ping()  # the connection is usable once the lock is released
    finally:
        await db.dispose()
    assert 0.15 <= gave_up_after < 0.6
