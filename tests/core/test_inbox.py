"""The inbox of deliveries answered by a turn: finished deliveries are group-committed."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, select

from core.db import tables as t
from core.db.database import Database
from core.db.inbox import SqlInbox


async def statuses(db: Database) -> dict[str, str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(t.inbox.c.key, t.inbox.c.status))
        return {key: status for key, status in rows.all()}


async def test_deliveries_finished_together_are_marked_in_fewer_writes(db: Database) -> None:
    inbox = SqlInbox(db, "test")
    keys = [f"k{n}" for n in range(40)]
    for key in keys:
        await inbox.begin(key)
    writes: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("UPDATE inbox"):
            writes.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        await asyncio.gather(*(inbox.done(key) for key in keys))
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert set((await statuses(db)).values()) == {"done"}
    assert 1 <= len(writes) < len(keys)  # those who waited are marked together


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
