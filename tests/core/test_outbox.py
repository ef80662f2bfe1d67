"""Outbox claiming: leases, expiry, several workers, and SQLite's one-relay rule."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from core.db import outbox
from core.db import tables as t
from core.db.database import Database
from core.events import TicketPriorityChanged
from core.model import Channel, utcnow
from tests.support.customers import customer_with_ticket


async def add_rows(db: Database, n: int) -> None:
    now = utcnow()
    rows = [
        {"event_type": "TicketOpened", "payload": {"ticket_id": i}, "status": "pending",
         "created_at": now, "available_at": now, "attempts": 0}
        for i in range(n)
    ]  # fmt: skip
    async with db.engine.begin() as conn:
        await conn.execute(insert(t.outbox), rows)


async def test_claimed_rows_are_not_claimed_again_until_the_lease_expires(db: Database) -> None:
    await add_rows(db, 3)
    first = await outbox.claim(db, "w1", limit=2)
    second = await outbox.claim(db, "w2", limit=5)
    assert [r.payload["ticket_id"] for r in first] == [0, 1]
    assert [r.payload["ticket_id"] for r in second] == [2]
    assert await outbox.claim(db, "w3") == []
    expired = await outbox.claim(db, "w4", lease=timedelta(seconds=-1))
    assert expired == []  # nothing is free yet: w1 and w2 hold live leases


async def test_expired_lease_is_claimed_by_another_worker(db: Database) -> None:
    await add_rows(db, 1)
    await outbox.claim(db, "crashed", lease=timedelta(milliseconds=1))
    await asyncio.sleep(0.01)
    again = await outbox.claim(db, "w2")
    assert [r.attempts for r in again] == [2]
    assert not await outbox.finish(db, again[0].id, "crashed")  # lost its lease
    assert await outbox.finish(db, again[0].id, "w2")
    assert await outbox.claim(db, "w3", lease=timedelta(milliseconds=1)) == []


async def test_retry_later_and_dead_letter(db: Database) -> None:
    await add_rows(db, 2)
    a, b = await outbox.claim(db, "w")
    assert await outbox.retry_later(db, a.id, "w", at=utcnow() + timedelta(hours=1), error="429")
    assert await outbox.retry_later(db, b.id, "w", at=utcnow(), error="bad request", dead=True)
    assert await outbox.claim(db, "w") == []
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(t.outbox.c.status, t.outbox.c.last_error))).all()
    assert sorted(map(tuple, rows)) == [("dead", "bad request"), ("pending", "429")]


async def test_concurrent_workers_never_claim_the_same_row(db: Database) -> None:
    await add_rows(db, 300)

    async def worker(name: str) -> list[int]:
        got: list[int] = []
        while rows := await outbox.claim(db, name, limit=7):
            got += [r.id for r in rows]
        return got

    results = await asyncio.gather(*(worker(f"w{i}") for i in range(4)))
    claimed = [i for r in results for i in r]
    assert len(claimed) == 300
    assert len(set(claimed)) == 300


async def test_postgres_workers_in_separate_engines_skip_locked_rows(pg_db: Database) -> None:
    # Separate engines (as separate processes would have) contend through the database only.
    await add_rows(pg_db, 500)
    others = [Database(pg_db.url) for _ in range(3)]
    try:

        async def worker(db: Database, name: str) -> list[int]:
            got: list[int] = []
            while rows := await outbox.claim(db, name, limit=5):
                got += [r.id for r in rows]
            return got

        results = await asyncio.gather(
            *(worker(db, f"p{i}") for i, db in enumerate([pg_db, *others]))
        )
    finally:
        for db in others:
            await db.dispose()
    claimed = [i for r in results for i in r]
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 500
    assert sum(1 for r in results if r) >= 2  # the work really was shared


def test_sqlite_allows_one_relay_process(tmp_path: Path) -> None:
    db_path = tmp_path / "careline.db"
    lock = outbox.SqliteRelayLock(db_path)
    lock.acquire()
    try:
        code = (
            "import sys; from pathlib import Path; from core.db.outbox import SqliteRelayLock, "
            "RelayLockHeld\n"
            "try:\n SqliteRelayLock(Path(sys.argv[1])).acquire()\nexcept RelayLockHeld as e:\n"
            " print(e); sys.exit(3)\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", code, str(db_path)], capture_output=True, text=True
        )
        assert other.returncode == 3, other.stderr
        assert "one relay process" in other.stdout
    finally:
        lock.release()
    again = outbox.SqliteRelayLock(db_path)
    again.acquire()
    again.release()


def test_sqlite_relay_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    db_path = tmp_path / "careline.db"
    code = (
        "import sys, time; from pathlib import Path; from core.db.outbox import SqliteRelayLock\n"
        "lock = SqliteRelayLock(Path(sys.argv[1])); lock.acquire()\n"
        "print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(outbox.RelayLockHeld):
            outbox.SqliteRelayLock(db_path).acquire()
        holder.kill()  # kill -9: no clean-up code runs
        holder.wait(10)
        lock = outbox.SqliteRelayLock(db_path)
        lock.acquire()
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()


async def test_an_event_recorded_on_a_loaded_aggregate_survives_garbage_collection(
    db: Database,
) -> None:
    """The session holds clean objects weakly; the unit of work keeps every loaded aggregate
    until commit (listeners on its session class), so the event still reaches the outbox."""
    async with db.uow() as uow:
        _, ticket = await customer_with_ticket(
            uow,
            channel=Channel.TELEGRAM,
            external_id="gc",
            description="the screen is cracked",
            category="hardware",
        )
        await uow.commit()
    assert ticket.id is not None
    async with db.uow() as uow:
        loaded = await uow.tickets.get(ticket.id)
        assert loaded is not None
        loaded.record(TicketPriorityChanged(ticket.id, "normal", "high"))
        del loaded
        gc.collect()
        await uow.commit()
    async with db.engine.connect() as conn:
        names = (await conn.execute(select(t.outbox.c.event_type))).scalars().all()
    assert "TicketPriorityChanged" in names
