"""Rate limits as fixed-window counters: in the database, or in process on SQLite.

One rule in both: a key's first hit opens a window of `limit.seconds`; hits past
`limit.hits` inside it are refused until it ends. On PostgreSQL a hit is one upsert
(`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`) in autocommit, so every replica counts
into the same row and no transaction stays open; the row lock lasts one statement (windows
are timed by the replicas' clocks, kept in sync by NTP). SQLite
serves one process (bots/server.py refuses a second), so a counter in memory is exact
there and costs no write.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete
from sqlalchemy.dialects import postgresql, sqlite

from core.db import tables as t
from core.db.database import Database
from core.db.types import UTCDateTime
from core.model import utcnow
from core.ports import RateLimit, RateLimiter

r = t.rate_limits.c


def rate_limiter_for(db: Database) -> RateLimiter:
    return InProcessRateLimiter() if db.is_sqlite else SqlRateLimiter(db)


def _wait(limit: RateLimit, hits: int, window_ends: datetime, now: datetime) -> int:
    if hits <= limit.hits:
        return 0
    return max(1, math.ceil((window_ends - now).total_seconds()))


class SqlRateLimiter:
    """Counters in `rate_limits`, shared by every process on the database."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        # Autocommit on PostgreSQL: the upsert is the whole round trip, no BEGIN/COMMIT.
        # SQLite's BEGIN IMMEDIATE listener needs a transaction it can end (tests only).
        self._engine = (
            db.engine.execution_options(isolation_level="AUTOCOMMIT")
            if db.is_postgres
            else db.engine
        )
        self._upsert = _upsert(postgresql.insert if db.is_postgres else sqlite.insert)
        self._clock = clock

    async def hit(self, limit: RateLimit, key: str) -> int:
        if limit.hits <= 0:
            return 0
        now = self._clock()
        ends = now + timedelta(seconds=limit.seconds)
        params = {"name": limit.name, "key": key, "now": now, "ends": ends}
        async with self._engine.begin() as conn:
            hits, window_ends = (await conn.execute(self._upsert, params)).one()
        return _wait(limit, hits, window_ends, now)


def _upsert(insert: Any) -> Any:
    """Count a hit: start a window, add to a running one, or start over after one ended.
    Built once: a hit then costs no statement building."""
    ended = r.window_ends <= bindparam("now", type_=UTCDateTime)
    new = insert(t.rate_limits).values(
        name=bindparam("name"),
        key=bindparam("key"),
        hits=1,
        window_ends=bindparam("ends", type_=UTCDateTime),
    )
    return new.on_conflict_do_update(
        index_elements=[r.name, r.key],
        set_={
            "hits": case((ended, 1), else_=r.hits + 1),
            "window_ends": case((ended, new.excluded.window_ends), else_=r.window_ends),
        },
    ).returning(r.hits, r.window_ends)


async def forget_ended_windows(db: Database) -> int:
    """Delete the counters whose window has ended (housekeeping); how many."""
    async with db.engine.begin() as conn:
        result = await conn.execute(delete(t.rate_limits).where(r.window_ends <= utcnow()))
    return result.rowcount


@dataclass(slots=True)
class _Window:
    ends: datetime
    hits: int = 0


class InProcessRateLimiter:
    """The same counters in memory, for a single process (SQLite, tests)."""

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], datetime] = utcnow) -> None:
        self._windows: dict[tuple[str, str], _Window] = {}
        self._max_keys = max_keys
        self._clock = clock

    async def hit(self, limit: RateLimit, key: str) -> int:
        if limit.hits <= 0:
            return 0
        now = self._clock()
        slot = (limit.name, key)
        window = self._windows.get(slot)
        if window is None or window.ends <= now:
            self._windows.pop(slot, None)  # a new window goes to the back of the line
            self._make_room(now)
            window = self._windows[slot] = _Window(now + timedelta(seconds=limit.seconds))
        window.hits += 1
        return _wait(limit, window.hits, window.ends, now)

    def _make_room(self, now: datetime) -> None:
        if len(self._windows) < self._max_keys:
            return
        for slot in [s for s, w in self._windows.items() if w.ends <= now]:
            del self._windows[slot]
        # Still full of live windows (a flood from many addresses): forget the oldest tenth.
        for slot in list(self._windows)[: max(0, len(self._windows) - self._max_keys * 9 // 10)]:
            del self._windows[slot]
