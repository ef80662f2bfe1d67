"""SQLite driven on the event loop's own thread, behind SQLAlchemy's aiosqlite dialect.

aiosqlite runs every statement on a helper thread and wakes the event loop when it is
done. A unit of work is about twenty statements, and on SQLite it holds the process's only
connection from BEGIN to COMMIT; each hand-off waits for the GIL, which the loop thread
keeps for up to `sys.getswitchinterval()` (5 ms) while it parses other requests. Under load
the connection was held mostly by waiting, and throughput collapsed to a third of what the
statements themselves cost.

SQLite in WAL mode with `synchronous=NORMAL` answers a statement in microseconds without
touching the disk (only checkpoints fsync), so running it inline is cheaper than any hand-off.
This module gives SQLAlchemy's aiosqlite dialect a connection with aiosqlite's shape whose
coroutines finish at once. The price: a statement that waits (another process holding the
write lock, `busy_timeout`) or a very large query stalls the loop for that long. On SQLite
Careline is one server process per database file, so the writer is almost always us.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class InlineCursor:
    """The part of aiosqlite's `Cursor` that SQLAlchemy uses, answered synchronously."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:  # SQLAlchemy opens cursors this way
        return self

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        if parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class InlineConnection:
    """The part of aiosqlite's `Connection` that SQLAlchemy uses, over `sqlite3.Connection`."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        # `_connection` is what SQLAlchemy's adapter tests to know the connection is open.
        self._connection: sqlite3.Connection | None = connection

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    def begin_immediate(self) -> None:
        """Take the write lock now (called from SQLAlchemy's synchronous "begin" event)."""
        self._conn.execute("BEGIN IMMEDIATE")

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close at once (SQLAlchemy's terminate)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._conn.isolation_level = value


def inline_creator(path: str, *, timeout: float, uri: bool = False) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine` on a `sqlite+aiosqlite` URL."""

    async def create() -> InlineConnection:
        # isolation_level=None: SQLAlchemy's "begin" listener issues BEGIN IMMEDIATE itself.
        # check_same_thread=False: the pool may close a connection from the GC's thread.
        connection = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=False, uri=uri
        )
        return InlineConnection(connection)

    return create
