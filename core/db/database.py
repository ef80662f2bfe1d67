"""Engine, sessions and the unit of work. Nothing here runs at import time."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import event, insert, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.exc import IntegrityError as IntegrityError  # re-exported
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.util import await_only

from core.db import tables as t
from core.db.erasure import SqlErasure
from core.db.mapping import start_mappers
from core.db.repositories import (
    SqlAgentRepository,
    SqlConversationRepository,
    SqlCustomerRepository,
    SqlDialogStore,
    SqlEmailVerificationRepository,
    SqlTicketRepository,
)
from core.db.sqlite_inline import InlineConnection, inline_creator
from core.db.statements import PooledDriver, SqlStatements, Statements, for_session, release
from core.errors import Conflict
from core.events import Event
from core.model import Aggregate, utcnow
from core.ports import UnitOfWork

if TYPE_CHECKING:
    from core.db.inbox import SqlInboxRecords
    from core.db.knowledge import SqlKnowledgeBase
    from core.db.threads import SqlThreadMap

#: The session the admin API's reads and the keys take; named here so no module outside
#: core.db imports SQLAlchemy. IntegrityError is re-exported for the API's error handler.
Session = AsyncSession

OUTBOX_CHANNEL = "careline_outbox"  # PostgreSQL NOTIFY channel: relays wake at once


#: What a lost race between two writers raises: a stale version, or a row another inserted first.
LOST_RACES: tuple[type[Exception], ...] = (Conflict, StaleDataError, IntegrityError)


class Database:
    """One engine and session factory for the process, built at start-up (the Transactions
    port of core/ports.py)."""

    races = LOST_RACES

    def __init__(
        self,
        url: str | URL,
        *,
        pool_size: int = 10,
        max_overflow: int = 10,
        echo: bool = False,
        busy_timeout_ms: int = 30_000,
        sqlite_durable: bool = False,
    ) -> None:
        start_mappers()
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        # A statement's parameters are what customers wrote and who they are: an error (and
        # the log line or traceback that shows it) names the statement, never its values.
        options: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            self._ensure_sqlite_folder()
            options["async_creator"] = inline_creator(
                self.url.database or ":memory:",
                patience=busy_timeout_ms / 1000,
                uri=self.url.query.get("uri") == "true",
            )
            # SQLite has one writer at a time. One pooled connection queues transactions
            # fairly in-process instead of spinning in SQLite's busy handler (second-long
            # tails). So never open a unit of work while holding another on SQLite.
            options.update(pool_size=1, max_overflow=0, pool_timeout=busy_timeout_ms / 1000)
        else:
            options.update(pool_size=pool_size, max_overflow=max_overflow)
        self.engine: AsyncEngine = create_async_engine(self.url, json_serializer=_dumps, **options)
        if self.is_sqlite:
            _tune_sqlite(self.engine, durable=sqlite_durable)
        else:
            _ping_at_checkout(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._uow_sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=_UnitOfWorkSession
        )
        # SQLite: units of work take turns in arrival order. The pool alone is not fair: a
        # task that just released the connection can take it straight back, and a waiter
        # starves for seconds under load (asyncio.Lock queues newcomers behind waiters).
        self._turn: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._outbox_listeners: list[Callable[[], None]] = []

    def on_outbox_written(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after each commit of this process that wrote outbox rows (a relay
        in the same process wakes at once, on SQLite too); returns the way to stop."""
        self._outbox_listeners.append(listener)
        return lambda: self._outbox_listeners.remove(listener)

    def _outbox_written(self) -> None:
        for listener in list(self._outbox_listeners):
            listener()

    @property
    def sqlite_path(self) -> Path | None:
        db = self.url.database
        if not self.is_sqlite or not db or db == ":memory:":
            return None
        return Path(db)

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(
            self._uow_sessions,
            notify=self.is_postgres,
            turn=self._turn,
            written=self._outbox_written,
        )

    @asynccontextmanager
    async def statements(self) -> AsyncIterator[Statements]:
        """A connection for statements that each stand alone (a batch of done marks, a
        pacing slot). On PostgreSQL each commits on its own, durably, without the BEGIN and
        COMMIT round trips of a transaction, straight through asyncpg (core.db.statements);
        on SQLite they commit together at the end."""
        if self.is_sqlite:
            async with self.engine.begin() as conn:
                yield SqlStatements(conn, postgres=False)
            return
        raw = await self.engine.raw_connection()
        try:
            yield PooledDriver(self.engine.dialect, raw)
        finally:
            await release(raw)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()

    def _ensure_sqlite_folder(self) -> None:
        path = self.sqlite_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)


#: A pooled connection idle longer than this is pinged at checkout; one used more recently is
#: trusted unless its socket is known closed. A server's restart, shutdown or
#: pg_terminate_backend closes the socket, which the event loop sees at once; the ping is
#: for what no one announces (a firewall that silently drops idle connections).
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_at_checkout(engine: AsyncEngine) -> None:
    """Make sure a pooled PostgreSQL connection is alive before it is used (after a restart
    or a failover the pool holds dead ones).

    A connection whose socket is closed is replaced; one idle for more than
    `PING_AFTER_IDLE_SECONDS` is pinged first, in one round trip (a query without arguments
    goes in the simple protocol: nothing is prepared, no transaction is needed). SQLAlchemy's
    `pool_pre_ping` takes three on asyncpg (BEGIN, a query, ROLLBACK) at every checkout, and
    a busy server checks out three connections per turn (its transaction, the pacing slot,
    the done mark). A fresh connection is not pinged. A connection that dies between the
    event loop's last look and its use fails that one unit of work, which its caller retries
    (Telegram redelivers, the relay tries again), and SQLAlchemy then discards the pool."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _idle_since(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _check(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        connection = record.driver_connection
        if connection.is_closed():
            raise DisconnectionError("a pooled connection was closed by the server")
        idle_since = record.info.get("idle_since")  # None: connected just now
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            await_only(connection.execute("SELECT 1"))
        except Exception as exc:  # the pool discards it and checks out another (3 tries)
            raise DisconnectionError("a pooled connection failed its ping") from exc


_UOW = "careline.uow"  # a unit of work's session names it in `Session.info`


class _UnitOfWorkSession(OrmSession):
    """The session of a unit of work. Its listeners are registered once, on the class: per
    session they cost more than the statements of a short turn."""


@event.listens_for(_UnitOfWorkSession, "transient_to_pending")
@event.listens_for(_UnitOfWorkSession, "loaded_as_persistent")
def _keep_aggregate(session: OrmSession, obj: Any) -> None:
    uow = session.info.get(_UOW)
    if uow is not None:
        uow._keep(session, obj)


class SqlUnitOfWork:
    """One transaction over the repositories; `commit()` also writes the outbox."""

    session: AsyncSession

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        notify: bool,
        turn: asyncio.Lock | None = None,
        written: Callable[[], None] | None = None,
    ) -> None:
        self._turn = turn
        self._sessions = sessions
        self._notify = notify
        self._written = written

    async def __aenter__(self) -> SqlUnitOfWork:
        if self._turn is not None:
            await self._turn.acquire()
        try:
            self.session = self._sessions()
        except BaseException:
            if self._turn is not None:
                self._turn.release()
            raise
        # The session holds clean objects only weakly; keep every aggregate alive until
        # commit so that events recorded on it cannot be garbage-collected away
        # (_UnitOfWorkSession's listeners call `_keep`).
        self._aggregates: dict[int, Aggregate] = {}
        self._events: list[Event] = []  # recorded without an aggregate (`emit`)
        self.session.sync_session.info[_UOW] = self
        self.customers = SqlCustomerRepository(self.session)
        self.agents = SqlAgentRepository(self.session)
        self.tickets = SqlTicketRepository(self.session)
        self.conversations = SqlConversationRepository(self.session)
        self.email_verifications = SqlEmailVerificationRepository(self.session)
        self.erasure = SqlErasure(self.session)
        self._statements = for_session(self.session)
        return self

    @property
    def inbox(self) -> SqlInboxRecords:
        """Inbound deliveries under the platform's keys, in this transaction."""
        from core.db.inbox import SqlInboxRecords

        return SqlInboxRecords(self.session, self._statements)

    @property
    def threads(self) -> SqlThreadMap:
        """The Slack desk's thread map, in this transaction."""
        from core.db.threads import SqlThreadMap

        return SqlThreadMap(self.session)

    @property
    def dialogs(self) -> SqlDialogStore:
        """The dialog engine's reads and writes of a conversation, in this transaction."""
        return SqlDialogStore(self._statements)

    @property
    def knowledge(self) -> SqlKnowledgeBase:
        """The knowledge base (articles, feedback, gaps), in this transaction."""
        from core.db.knowledge import SqlKnowledgeBase

        return SqlKnowledgeBase(self.session)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() rolls back whatever was not committed and detaches objects without
        # expiring them, so callers can still read what they loaded.
        try:
            await self.session.close()
        finally:
            self.session.sync_session.info.pop(_UOW, None)
            if self._turn is not None:
                self._turn.release()

    async def commit(self) -> None:
        rows = self._pending_outbox_rows()
        try:
            if rows:
                await self.session.execute(insert(t.outbox), rows)
                if self._notify:
                    await self.session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
            await self.session.commit()
        except StaleDataError as exc:
            await self.session.rollback()
            raise Conflict("someone else changed this at the same time; try again") from exc
        if rows and self._written is not None:
            self._written()

    async def rollback(self) -> None:
        await self.session.rollback()

    def _keep(self, _session: Any, obj: Any) -> None:
        if isinstance(obj, Aggregate):
            self._aggregates[id(obj)] = obj

    def emit(self, event: Event) -> None:
        """Record an event of no aggregate (a staff invitation): written at commit."""
        self._events.append(event)

    def _pending_outbox_rows(self) -> list[dict[str, Any]]:
        now = utcnow()
        rows = []
        loose, self._events = self._events, []
        for events in [*(obj.pull_events() for obj in self._aggregates.values()), loose]:
            for ev in events:
                rows.append(
                    {
                        "event_type": ev.name,
                        "payload": ev.to_payload(),
                        "status": "pending",
                        "created_at": now,
                        "available_at": now,
                        "attempts": 0,
                    }
                )
        return rows


def domain(uow: SqlUnitOfWork) -> UnitOfWork:
    """The SQL unit of work as the services' UnitOfWork: it is one, but mypy cannot see it
    through the protocol's mutable (hence invariant) repository attributes."""
    return cast(UnitOfWork, uow)


@dataclass(frozen=True, slots=True)
class UrlFacts:
    """What the rest of the program may know of a database URL."""

    shown: str  # with the password hidden, for banners and logs
    backend: str  # "sqlite", "postgresql"
    password: str | None  # to redact from every log line


def url_facts(url: str) -> UrlFacts:
    parsed = make_url(url)
    password = str(parsed.password) if parsed.password else None
    return UrlFacts(
        parsed.render_as_string(hide_password=True), parsed.get_backend_name(), password
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _tune_sqlite(engine: AsyncEngine, *, durable: bool) -> None:
    # WAL with synchronous=NORMAL survives a crashed process, but a power cut may take back the
    # last commits; FULL syncs the WAL at every commit (https://sqlite.org/pragma.html).
    synchronous = "FULL" if durable else "NORMAL"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a deferred read that later writes can fail with
        # SQLITE_BUSY without waiting (https://sqlite.org/lang_transaction.html).
        # Straight to sqlite3: a statement's whole path through SQLAlchemy costs more. The
        # inline driver opens connections in autocommit mode, so only this starts a transaction.
        # await_only: this listener is synchronous, but runs in SQLAlchemy's greenlet.
        driver: InlineConnection = conn.connection.driver_connection
        await_only(driver.begin_immediate())
