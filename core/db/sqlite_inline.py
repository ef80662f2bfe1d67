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
coroutines finish at once. The price: a very large query stalls the loop for that long.

Waiting for a lock must not stall it: SQLite's busy handler sleeps inside the call, and while
another process held the write lock every request of the process froze for up to the busy
timeout. So the connection has no busy timeout; a statement SQLite answers SQLITE_BUSY is
retried after an `asyncio.sleep` with backoff, until the patience runs out, and then the
same "database is locked" error is raised. Busy means the statement did not run, but a retry
is only made where nothing before it can have changed: BEGIN IMMEDIATE, COMMIT (the
transaction stays open, https://sqlite.org/lang_transaction.html) and single statements
outside a transaction. Inside one we hold the write lock since BEGIN IMMEDIATE, and WAL
readers never wait, so a busy answer there is passed up at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

FIRST_PAUSE = 0.001  # seconds; doubles up to LONGEST_PAUSE while the lock is held
LONGEST_PAUSE = 0.025


def is_busy(exc: sqlite3.OperationalError) -> bool:
    # The primary result code is the low byte of extended ones such as SQLITE_BUSY_RECOVERY.
    return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


async def wait_out_lock(attempt: Callable[[], T], patience: float) -> T:
    """`attempt()`, retried while SQLite answers busy, sleeping on the loop in between."""
    deadline = time.monotonic() + patience
    pause = FIRST_PAUSE
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            left = deadline - time.monotonic()
            if not is_busy(exc) or left <= 0:
                raise
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE)


class InlineCursor:
    """The part of aiosqlite's `Cursor` that SQLAlchemy uses, answered synchronously."""

    __slots__ = ("_cursor", "_patience")

    def __init__(self, cursor: sqlite3.Cursor, patience: float) -> None:
        self._cursor = cursor
        self._patience = patience

    async def __aenter__(self) -> InlineCursor:  # SQLAlchemy opens cursors this way
        return self

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        def run() -> None:
            if parameters is None:
                self._cursor.execute(sql)
            else:
                self._cursor.execute(sql, parameters)

        if self._cursor.connection.in_transaction:
            run()
        else:
            await wait_out_lock(run, self._patience)
        return self

    # No retry: outside a transaction each row commits alone, so a busy row may follow others.
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

    def __init__(self, connection: sqlite3.Connection, *, patience: float) -> None:
        # `_connection` is what SQLAlchemy's adapter tests to know the connection is open.
        self._connection: sqlite3.Connection | None = connection
        self.patience = patience  # seconds to wait for another connection's lock

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor(), self.patience)

    async def begin_immediate(self) -> None:
        """Take the write lock now, waiting for it without blocking the loop."""
        await wait_out_lock(lambda: self._conn.execute("BEGIN IMMEDIATE"), self.patience)

    async def commit(self) -> None:
        await wait_out_lock(self._conn.commit, self.patience)

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


def inline_creator(path: str, *, patience: float, uri: bool = False) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine` on a `sqlite+aiosqlite` URL."""

    async def create() -> InlineConnection:
        # isolation_level=None: SQLAlchemy's "begin" listener issues BEGIN IMMEDIATE itself.
        # check_same_thread=False: the pool may close a connection from the GC's thread.
        # timeout=0: no busy handler sleeping on the loop's thread; InlineConnection waits.
        connection = sqlite3.connect(
            path, timeout=0, isolation_level=None, check_same_thread=False, uri=uri
        )
        return InlineConnection(connection, patience=patience)

    return create
