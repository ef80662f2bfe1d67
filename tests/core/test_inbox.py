"""The inbox of deliveries answered by a turn: finished deliveries are group-committed."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from core.db import tables as t
from core.db.database import Database
from core.db.inbox import _DONE, SqlInbox, _set_statement
from core.db.statements import compiled
from tests.support.statements import write_transactions


async def statuses(db: Database) -> dict[str, str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(t.inbox.c.key, t.inbox.c.status))
        return {key: status for key, status in rows.all()}


async def test_deliveries_finished_together_are_marked_in_fewer_writes(db: Database) -> None:
    inbox = SqlInbox(db, "test")
    keys = [f"k{n}" for n in range(40)]
    for key in keys:
        await inbox.begin(key)
    async with write_transactions(db) as commits:
        await asyncio.gather(*(inbox.done(key) for key in keys))
    assert set((await statuses(db)).values()) == {"done"}
    assert 1 <= commits[0] < len(keys)  # those who waited are marked together


async def test_a_done_mark_finds_its_row_through_the_index_in_any_plan(pg_db: Database) -> None:
    """PostgreSQL caches a prepared statement's generic plan after five runs. Planned while
    the inbox is empty (a new deployment's), a done mark must still look its row up by the
    (source, key) index, not scan the source's rows as the table grows."""
    params = {"b_source": "telegram", "b_key": "k1", "status": "done", "error": None}
    sql = compiled(_set_statement(*_DONE), pg_db.engine.dialect, {**params, "done_at": None}).sql
    async with pg_db.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        types = ", ".join(p.name for p in (await driver.prepare(sql)).get_parameters())
        await driver.execute("SET plan_cache_mode = force_generic_plan")
        await driver.execute(f"PREPARE done_mark ({types}) AS {sql}")
        args = ", ".join(["NULL"] * len(types.split(",")))
        plan = "\n".join(
            row[0] for row in await driver.fetch(f"EXPLAIN EXECUTE done_mark ({args})")
        )
    assert "Index Scan using uq_inbox_source_key on inbox" in plan, plan
    assert "Filter" not in plan, plan


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_one_succeeds(
    db: Database,
) -> None:
    inbox = SqlInbox(db, "test")
    for key in ("a", "b", "c"):
        await inbox.begin(key)
    real = db.statements

    def broken() -> object:
        raise ConnectionError("the database went away")

    db.statements = broken  # type: ignore[assignment,method-assign]
    results = await asyncio.gather(inbox.done("a"), inbox.done("b"), return_exceptions=True)
    db.statements = real  # type: ignore[method-assign]
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    await inbox.done("c")
    assert await statuses(db) == {"a": "pending", "b": "pending", "c": "done"}


async def test_a_note_is_kept_with_its_delivery(db: Database) -> None:
    inbox = SqlInbox(db, "test")
    await inbox.begin("blocked")
    await inbox.done("blocked", "telegram: bot was blocked by the user")
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(t.inbox.c.status, t.inbox.c.error))).one()
    assert tuple(row) == ("done", "telegram: bot was blocked by the user")
