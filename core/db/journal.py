"""The relay's delivery journal in SQL: one row per (event, handler) marked `sending` before
its side effect and `done` after, the results written in batches, the rows' release, and
the connections the relay keeps (bots/relay/ has the rules; this module only the SQL)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ARRAY, BigInteger, Insert, Text, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import tables as t
from core.db.database import OUTBOX_CHANNEL, Database
from core.db.types import UTCDateTime

log = logging.getLogger("bots.relay")

d = t.outbox_deliveries.c
o = t.outbox.c
T = TypeVar("T")
#: A connection of the relay's own transactions.
Connection = AsyncConnection


@dataclass(slots=True)
class DeliveryState:
    status: str
    attempts: int
    next_attempt_at: datetime | None
    updated_at: datetime
    last_error: str | None
    ours: bool = False  # this relay just marked it `sending` and must carry it out


def outcome_row(
    event_id: int,
    handler: str,
    status: str,
    provider_id: str | None,
    error: str | None,
    next_attempt_at: datetime | None,
) -> dict[str, Any]:
    """One delivery's result, as `record` writes it."""
    return {
        "e_id": event_id,
        "h_name": handler,
        "b_status": status,
        "b_provider": provider_id,
        "b_error": error[:2000] if error else None,
        "b_next": next_attempt_at,
    }


def settle_row(row_id: int, status: str, available_at: datetime, error: str) -> dict[str, Any]:
    """One outbox row's release, as `record` writes it."""
    return {"r_id": row_id, "b_status": status, "b_at": available_at, "b_error": error or None}


async def record(
    conn: AsyncConnection,
    worker: str,
    outcomes: Sequence[dict[str, Any]],
    settles: Sequence[dict[str, Any]],
    now: datetime,
) -> None:
    """Write deliveries' results (`outcome_row`) and release `worker`'s rows (`settle_row`),
    each kind in one executemany."""
    if outcomes:
        await conn.execute(
            update(t.outbox_deliveries)
            .where(d.event_id == bindparam("e_id"), d.handler == bindparam("h_name"))
            .values(
                status=bindparam("b_status"),
                provider_id=bindparam("b_provider"),
                last_error=bindparam("b_error"),
                next_attempt_at=bindparam("b_next"),
                updated_at=now,
            ),
            outcomes,
        )
    if settles:
        await conn.execute(
            update(t.outbox)
            .where(o.id == bindparam("r_id"), o.locked_by == worker)
            .values(
                status=bindparam("b_status"),
                available_at=bindparam("b_at"),
                last_error=bindparam("b_error"),
                processed_at=now,
                locked_by=None,
                locked_until=None,
            ),
            settles,
        )


async def begin_deliveries(
    conn: AsyncConnection,
    is_postgres: bool,
    pairs: Sequence[tuple[int, str]],
    now: datetime,
    lease: timedelta,
) -> dict[int, dict[str, DeliveryState]]:
    """Mark every due (event, handler) `sending`; read the state of those that are not due.

    A pair comes back `ours` when this call marked it: only then may its handler run. Not
    due: already done/skipped/dead, a retry not yet due, or `sending` by a live relay.
    """
    pairs = sorted(set(pairs))  # one lock order for every relay
    params: dict[str, Any] = {
        "b_now": now,
        "b_stale": now - lease,
    }  # an older `sending`: its relay died
    if is_postgres:
        params |= {"b_events": [e for e, _ in pairs], "b_handlers": [h for _, h in pairs]}
        result = await conn.execute(_begin_statement_pg(), params)
    else:
        rows = [
            {"event_id": e, "handler": h, "status": "sending", "attempts": 1, "updated_at": now}
            for e, h in pairs
        ]
        stmt = sqlite.insert(t.outbox_deliveries).values(rows)
        result = await conn.execute(_on_conflict_take_due(stmt), params)
    states: dict[int, dict[str, DeliveryState]] = {}
    for event_id, handler, attempts in result.all():
        states.setdefault(int(event_id), {})[handler] = DeliveryState(
            "sending", attempts, None, now, None, ours=True
        )
    others = sorted({e for e, h in pairs if h not in states.get(e, {})})
    if others:  # rare: retries, redeliveries, a relay that died
        result = await conn.execute(
            select(
                d.event_id, d.handler, d.status, d.attempts, d.next_attempt_at, d.updated_at,
                d.last_error,
            ).where(d.event_id.in_(others))
        )  # fmt: skip
        for event_id, handler, status, attempts, next_at, updated_at, error in result.all():
            named = states.setdefault(int(event_id), {})
            if handler not in named:
                named[handler] = DeliveryState(status, attempts, next_at, updated_at, error)
    return states


def _on_conflict_take_due(stmt: Any) -> Any:
    excluded = stmt.excluded
    due = or_(
        and_(
            d.status == "failed",
            or_(d.next_attempt_at.is_(None), d.next_attempt_at <= bindparam("b_now")),
        ),
        and_(d.status == "sending", d.updated_at < bindparam("b_stale")),
    )
    return stmt.on_conflict_do_update(
        index_elements=[d.event_id, d.handler],
        set_={
            "status": excluded.status,
            "attempts": d.attempts + 1,
            "updated_at": excluded.updated_at,
        },
        where=due,
    ).returning(d.event_id, d.handler, d.attempts)


@functools.cache
def _begin_statement_pg() -> Insert:
    # Two arrays instead of a VALUES list: one statement text for any batch size, so
    # SQLAlchemy compiles it once and asyncpg reuses its prepared statement.
    pairs = (
        func.unnest(
            bindparam("b_events", type_=ARRAY(BigInteger)),
            bindparam("b_handlers", type_=ARRAY(Text)),
        )
        .table_valued("event_id", "handler")
        .render_derived(name="pairs")
    )
    rows = select(
        pairs.c.event_id,
        pairs.c.handler,
        bindparam("b_status", "sending"),
        bindparam("b_one", 1),
        bindparam("b_now", type_=UTCDateTime()),
    )
    columns = ["event_id", "handler", "status", "attempts", "updated_at"]
    stmt = postgresql.insert(t.outbox_deliveries).from_select(columns, rows)
    return _on_conflict_take_due(stmt)


class HeldConnection:
    """The connection a relay keeps for its own transactions (PostgreSQL).

    A pool checkout per transaction costs a pre-ping round trip; holding the connection
    saves it. A connection gone stale (the server restarted) fails one attempt, which is
    retried at once on a new connection; every transaction the relay runs is safe to repeat.
    SQLite (one pooled connection shared with the web part) checks out per transaction.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: AsyncConnection | None = None

    async def transaction(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        if not self.db.is_postgres:
            async with self.db.engine.begin() as conn:
                return await work(conn)
        while True:
            fresh = self._conn is None
            if self._conn is None:
                self._conn = await self.db.engine.connect()
            conn = self._conn
            try:
                async with conn.begin():
                    return await work(conn)
            except BaseException as exc:
                await self.close(discard=True)
                stale = isinstance(exc, DBAPIError) and exc.connection_invalidated
                if fresh or not stale:
                    raise
                log.info("relay: database connection lost (%s); reconnecting", exc)

    async def close(self, *, discard: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                if discard:  # its state after a failure is unknown: never reuse it
                    await conn.invalidate()
                await conn.close()


async def listen(db: Database, wake: Callable[[], None], stop: asyncio.Event) -> None:
    """Call `wake` on every NOTIFY of new outbox rows (PostgreSQL) until `stop` is set;
    reconnect when the connection drops (missed wakes: the relay's idle poll)."""

    while not stop.is_set():
        try:
            async with db.engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                if raw is None or not hasattr(raw, "add_listener"):
                    log.info("relay: driver has no LISTEN support; polling instead")
                    return
                lost = asyncio.Event()
                raw.add_termination_listener(lambda _c, lost=lost: lost.set())
                await raw.add_listener(OUTBOX_CHANNEL, lambda *_a: wake())
                wake()  # whatever was committed while we were not listening
                try:
                    while not (stop.is_set() or lost.is_set() or raw.is_closed()):
                        await sleep_or_stop(stop, 5.0, lost)
                finally:
                    # The LISTEN must not go back to the pool with the connection.
                    await conn.invalidate()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("relay: LISTEN connection failed (%s); retrying", exc)
            await sleep_or_stop(stop, 1.0)


async def sleep_or_stop(stop: asyncio.Event, seconds: float, *others: asyncio.Event) -> None:
    """Sleep `seconds`, or less when `stop` (or one of `others`) is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in (stop, *others)]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
