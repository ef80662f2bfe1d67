"""How the hot path's statements run: through SQLAlchemy, or on PostgreSQL straight through
asyncpg.

A Telegram turn runs a handful of small statements (who is writing, a first contact's
insert, the conversation's versioned write, the inbox record, a pacing slot, the done mark).
Through SQLAlchemy each costs about 100 µs of CPU beyond asyncpg's own 50-60 µs (its cache
key, execution context, cursor emulation and result objects), a fifth of a turn in all
(`python -m bench.turn_cpu --profile`). On PostgreSQL these statements run on asyncpg
directly instead, on the same pooled connection and in the same transaction as the unit of
work's session, so they commit and roll back with its ORM work.

They stay SQLAlchemy Core statements, written once for both databases: each is compiled once
per dialect and set of parameters into asyncpg's SQL, and its parameters and results go
through their columns' own SQLAlchemy types (the same conversions as a session's). asyncpg
prepares it once per connection (its statement cache). Errors come out as SQLAlchemy's
(an IntegrityError is still a lost race). SQLite runs the same statements through
SQLAlchemy (`SqlStatements`), in process and cheap already.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, cast
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import SessionTransaction
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

Row = Sequence[Any]
Params = Mapping[str, Any]


class Statements(Protocol):
    """Somewhere to run Core statements: a unit of work's transaction, or (from
    `Database.statements()`) a connection where each commits on its own."""

    postgres: bool

    async def first(self, statement: Executable, params: Params) -> Row | None:
        """The first row the statement returns, if any."""
        ...

    async def all(self, statement: Executable, params: Params) -> list[Row]: ...

    async def run(self, statement: Executable, params: Params) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        ...

    async def run_many(self, statement: Executable, rows: Sequence[Params]) -> None:
        """Run a statement once per set of parameters, in one round trip and all or none
        (on PostgreSQL outside a transaction, one commit)."""
        ...


async def one(run: Statements, statement: Executable, params: Params) -> Row:
    """The row a statement always returns (an INSERT ... RETURNING, a clock read)."""
    row = await run.first(statement, params)
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row


class SqlStatements:
    """Statements through SQLAlchemy, on a session or a connection."""

    def __init__(self, executor: AsyncSession | AsyncConnection, *, postgres: bool) -> None:
        self._executor = executor
        self.postgres = postgres

    async def first(self, statement: Executable, params: Params) -> Row | None:
        return (await self._executor.execute(statement, params)).first()

    async def all(self, statement: Executable, params: Params) -> list[Row]:
        return list((await self._executor.execute(statement, params)).all())

    async def run(self, statement: Executable, params: Params) -> int:
        result = await self._executor.execute(statement, params)
        return int(getattr(result, "rowcount", 0))

    async def run_many(self, statement: Executable, rows: Sequence[Params]) -> None:
        await self._executor.execute(statement, list(rows))


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement as asyncpg runs it: its SQL, where each positional argument comes from
    (a parameter's name, or a value fixed in the statement) with its type's conversion, and
    the conversions of the result's columns."""

    sql: str
    arguments: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]

    def args(self, params: Params) -> list[Any]:
        values = []
        for name, fixed, convert in self.arguments:
            value = fixed if name is None else params[name]
            values.append(value if convert is None else convert(value))
        return values

    def row(self, record: Sequence[Any]) -> Row:
        if not self.results:
            return tuple(record)
        values = list(record)
        for index, convert in self.results:
            values[index] = convert(values[index])
        return tuple(values)


#: Per dialect (an engine's: its JSON serializer is part of the conversions), each statement
#: compiled per set of parameters' names. Statements are built once (functools.cache), so
#: their identity is the key; each is kept alive beside its compiled form, so that its id
#: is never reused.
_compiled: WeakKeyDictionary[Dialect, dict[tuple[int, tuple[str, ...]], Any]] = WeakKeyDictionary()


def compiled(statement: Executable, dialect: Dialect, params: Params) -> Compiled:
    """`statement` compiled for `dialect` with these parameters' names, once per process."""
    names = tuple(sorted(params))
    cache = _compiled.get(dialect)
    if cache is None:
        cache = _compiled[dialect] = {}
    found = cache.get((id(statement), names))
    if found is None:
        found = cache[id(statement), names] = (statement, _compile(statement, dialect, names))
    return cast(Compiled, found[1])


def _compile(statement: Executable, dialect: Dialect, names: tuple[str, ...]) -> Compiled:
    # column_keys: an INSERT's columns are the parameters given, as a session compiles it.
    element = cast(ClauseElement, statement)
    sql = cast(SQLCompiler, element.compile(dialect=dialect, column_keys=list(names)))
    if getattr(sql, "insert_prefetch", None) or getattr(sql, "update_prefetch", None):
        raise ValueError("a statement with Python-side column defaults cannot run directly")
    if sql.literal_execute_params or sql.post_compile_params:
        raise ValueError("a statement with expanding or literal parameters cannot run directly")
    binds = {name: bind for bind, name in sql.bind_names.items()}
    arguments: list[tuple[str | None, Any, Callable[[Any], Any] | None]] = []
    for name in sql.positiontup or ():
        bind = binds[name]
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bind.key in names:
            arguments.append((bind.key, None, convert))
        elif bind.required:
            raise ValueError(f"parameter {bind.key!r} is required")
        else:
            arguments.append((None, bind.effective_value, convert))
    results = []
    for index, column in enumerate(getattr(statement, "exported_columns", ())):
        convert = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if convert is not None:
            results.append((index, convert))
    return Compiled(sql.string, tuple(arguments), tuple(results))


class _Driver:
    """Statements on an asyncpg connection of SQLAlchemy's pool."""

    postgres = True

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect

    async def _connection(self) -> tuple[Any, Any]:
        """The pool's adapted connection and asyncpg's connection inside it."""
        raise NotImplementedError

    async def first(self, statement: Executable, params: Params) -> Row | None:
        plan, record = await self._send("fetchrow", statement, params)
        return None if record is None else plan.row(record)

    async def all(self, statement: Executable, params: Params) -> list[Row]:
        plan, records = await self._send("fetch", statement, params)
        return [plan.row(record) for record in records]

    async def run(self, statement: Executable, params: Params) -> int:
        _, status = await self._send("execute", statement, params)
        count = status.rsplit(" ", 1)[-1]  # "UPDATE 1", "INSERT 0 1", "DELETE 3"
        return int(count) if count.isdigit() else 0

    async def run_many(self, statement: Executable, rows: Sequence[Params]) -> None:
        if rows:
            await self._send("executemany", statement, rows[0], rows)

    async def _send(
        self,
        method: str,
        statement: Executable,
        params: Params,
        rows: Sequence[Params] | None = None,
    ) -> tuple[Compiled, Any]:
        """Call asyncpg's `method` with the statement's SQL and arguments (each row's, for
        executemany); the compiled statement and asyncpg's answer."""
        plan = compiled(statement, self._dialect, params)
        adapted, connection = await self._connection()
        args: list[Any] = plan.args(params) if rows is None else [plan.args(r) for r in rows]
        positional = args if rows is None else [args]
        try:
            return plan, await getattr(connection, method)(plan.sql, *positional)
        except Exception as error:
            self._raise(adapted, error, plan.sql, args)

    def _raise(self, adapted: Any, error: Exception, sql: str, args: list[Any]) -> NoReturn:
        """Raise `error` as SQLAlchemy's execution would: asyncpg's error translated to the
        DBAPI's by the adapted connection (which also forgets a transaction whose connection
        closed), then wrapped in SQLAlchemy's class of it (IntegrityError, OperationalError),
        without the parameters' values, as the engine's own errors (Database).
        A dead connection is then found closed at its next checkout and replaced."""
        dbapi_error = self._dialect.loaded_dbapi.Error
        try:
            adapted._handle_exception(error)
        except dbapi_error as translated:
            raise DBAPIError.instance(
                sql, args, translated, dbapi_error, hide_parameters=True, dialect=self._dialect
            ) from error
        raise error  # pragma: no cover - _handle_exception always raises


class SessionDriver(_Driver):
    """Statements in a unit of work's transaction: on its session's connection, after the
    BEGIN that SQLAlchemy's asyncpg adapter sends before its first statement. Its commit
    and rollback then end these statements' work too."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session.get_bind().dialect)
        self._session = session
        self._transaction: SessionTransaction | None = None
        self._connections: tuple[Any, Any] = (None, None)

    async def _connection(self) -> tuple[Any, Any]:
        transaction = self._session.sync_session.get_transaction()
        if transaction is None or transaction is not self._transaction:
            connection = await self._session.connection()
            raw = await connection.get_raw_connection()
            adapted: Any = raw.dbapi_connection
            # The adapter begins lazily, at its first statement; these statements do not pass
            # through it, so begin here (SQLAlchemy's own BEGIN, which its commit ends).
            if adapted._transaction is None:
                await adapted._start_transaction()
            self._transaction = self._session.sync_session.get_transaction()
            self._connections = (adapted, raw.driver_connection)
        return self._connections


class PooledDriver(_Driver):
    """Statements that each commit on their own (no transaction), on one connection checked
    out of the pool for a `Database.statements()` block."""

    def __init__(self, dialect: Dialect, raw: Any) -> None:
        super().__init__(dialect)
        self._connections = (raw.dbapi_connection, raw.driver_connection)

    async def _connection(self) -> tuple[Any, Any]:
        return self._connections


async def release(raw: Any) -> None:
    """Give a pooled connection back (its checkin runs in SQLAlchemy's greenlet)."""
    await greenlet_spawn(raw.close)


def for_session(session: AsyncSession) -> Statements:
    """A unit of work's statements: straight through asyncpg on PostgreSQL."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return SessionDriver(session)
    return SqlStatements(session, postgres=False)
