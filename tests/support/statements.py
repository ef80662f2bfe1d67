"""The statements a database ran during a block, as the database saw them.

On SQLite every statement passes through SQLAlchemy's cursor events (of any engine in the
process). On PostgreSQL some go straight through asyncpg (core.db.statements), so the
server's own count is read (pg_stat_statements, which the tests' cluster loads)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from core.db.database import Database


def _kind(statement: str) -> tuple[str, str] | None:
    """("INSERT", "inbox") for a write, ("SELECT", "") for the rest; None for BEGIN and such."""
    words = statement.replace("(", " ").split()
    if not words:
        return None
    verb = words[0].upper()
    if verb == "WITH":  # a data-modifying CTE: its outer statement, the last write
        writes = [n for n, w in enumerate(words) if w.upper() in ("INSERT", "UPDATE", "DELETE")]
        if not writes:
            return "SELECT", ""
        words = words[writes[-1] :]
        verb = words[0].upper()
    if verb in ("INSERT", "DELETE"):
        return verb, words[2].strip('"')  # INSERT INTO t, DELETE FROM t
    if verb == "UPDATE":
        return verb, words[1].strip('"')
    if verb == "SELECT":
        return verb, ""
    return None


@contextmanager
def _every_engine(name: str, listener: Callable[..., None]) -> Iterator[None]:
    """`listener` on event `name` of every engine of the process (a served app builds its
    own) for the block."""
    event.listen(Engine, name, listener)
    try:
        yield
    finally:
        event.remove(Engine, name, listener)


@asynccontextmanager
async def statements_run(db: Database) -> AsyncIterator[Counter[tuple[str, str]]]:
    """Count the statements run on `db` in the block by (verb, table written)."""
    seen: Counter[tuple[str, str]] = Counter()
    if not db.is_postgres:

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            kind = _kind(statement)
            if kind is not None:
                seen[kind] += 1

        with _every_engine("before_cursor_execute", count):
            yield seen
        return
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_statements_reset()"))
    yield seen
    query = text(
        "SELECT query, calls FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND query NOT LIKE '%pg_stat_statements%'"
    )
    async with db.engine.connect() as conn:
        for statement, calls in (await conn.execute(query)).all():
            kind = _kind(statement)
            if kind is not None:
                seen[kind] += calls


@asynccontextmanager
async def write_transactions(db: Database) -> AsyncIterator[list[int]]:
    """How many transactions committed on `db` in the block, in a one-item list filled at its
    end: on SQLite its commits (SQLAlchemy's commit events), on PostgreSQL the transaction ids
    handed out (each writing transaction takes one; reading the counter takes none)."""
    counted = [0]
    if not db.is_postgres:

        def commit(_conn: Any) -> None:
            counted[0] += 1

        with _every_engine("commit", commit):
            yield counted
        return
    next_xid = text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
    async with db.engine.connect() as conn:
        before = (await conn.execute(next_xid)).scalar_one()
    yield counted
    async with db.engine.connect() as conn:
        counted[0] = (await conn.execute(next_xid)).scalar_one() - before
