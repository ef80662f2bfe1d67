"""One send rate for the whole cluster: reservations of send slots in the database (GCRA).

A platform's limits hold per bot, not per process: Telegram takes about 30 messages/s from
one bot and about 1/s per chat, whichever relay or web process sends them. Each send first
reserves a slot in a shared row with one statement (autocommit, the row lock lasts that
statement): the row keeps the theoretical arrival time (TAT) of the next send of its key
(the generic cell rate algorithm, as in ATM traffic shaping and Redis-cell), and the statement
moves it one interval later and returns it with the database's clock. The caller then waits
until its slot (`reserve` returns the seconds) and sends. Every process reads the same clock,
the database's, so replicas' clocks never matter; a reservation whose process dies before
sending leaves one slot unused, never an extra send.

`burst` lets a key send that many at once after a quiet spell (a chat's first three
messages), then holds it to `per_second`. SQLite serves one process, which paces itself in
memory (bots.telegram); this module is for PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text

from core.db.database import Database
from core.db.statements import one

_RESERVE = text(
    """
    INSERT INTO send_pacing AS p (name, key, tat)
    VALUES (:name, :key, extract(epoch FROM clock_timestamp()) + :interval)
    ON CONFLICT (name, key) DO UPDATE
        SET tat = greatest(p.tat, extract(epoch FROM clock_timestamp())) + :interval
    RETURNING p.tat, extract(epoch FROM clock_timestamp())
    """
)
_NOW = text("SELECT extract(epoch FROM clock_timestamp())")
_FORGET = text("DELETE FROM send_pacing WHERE tat < extract(epoch FROM clock_timestamp()) - :idle")
FORGET_EVERY = 60.0  # seconds between clean-ups of idle keys (one per process)
LAG_MEMORY = 30.0  # seconds a smallest lag is trusted (clocks drift; a quick answer recurs)
IDLE = 300.0  # a key this long past its last slot is forgotten (a fresh row is the same)


class SqlPacer:
    def __init__(self, db: Database) -> None:
        if not db.is_postgres:
            raise ValueError("SqlPacer needs PostgreSQL; SQLite serves one process")
        self._db = db
        self._next_forget = time.monotonic() + FORGET_EVERY
        self._lag: float | None = None
        self._calibrating = asyncio.Lock()
        self._lag_until = 0.0

    async def reserve(self, name: str, key: str, per_second: float, burst: int = 1) -> float:
        """Reserve the next send slot of `key`; the seconds to wait before sending."""
        if per_second <= 0:
            return 0.0
        if self._lag is None:
            async with self._calibrating:  # once, however many sends are waiting
                if self._lag is None:
                    await self._calibrate()
        start, now = await self.slot(name, key, per_second, burst)
        answered = time.time()
        # The slot on this process's clock: the database's time plus the smallest lag seen
        # lately between its clock read and our answer (clock offset and the quickest return
        # trip), so a slow answer does not make this send late onto the next one's slot.
        lag = answered - now
        if self._lag is None or lag < self._lag or answered > self._lag_until:
            self._lag, self._lag_until = lag, answered + LAG_MEMORY
        return max(0.0, start + self._lag - answered)

    async def _calibrate(self) -> None:
        """The lag before the first slot: a first answer is slow (a new connection), and a
        slot placed by it would be late onto its successor's."""
        for _ in range(3):
            async with self._db.statements() as run:
                (now,) = await one(run, _NOW, {})
            lag = time.time() - float(now)
            if self._lag is None or lag < self._lag:
                self._lag, self._lag_until = lag, time.time() + LAG_MEMORY

    async def slot(
        self, name: str, key: str, per_second: float, burst: int = 1
    ) -> tuple[float, float]:
        """Reserve the next send slot of `key`: when it starts and the database's now (both
        seconds since the epoch on the database's clock)."""
        interval = 1.0 / per_second
        params = {"name": name, "key": key[:128], "interval": interval}
        async with self._db.statements() as run:
            tat, now = await one(run, _RESERVE, params)
            if time.monotonic() >= self._next_forget:
                self._next_forget = time.monotonic() + FORGET_EVERY
                await run.run(_FORGET, {"idle": IDLE})
        # The slot starts one interval before the new TAT; a burst may run ahead of it.
        return float(tat) - interval - (burst - 1) * interval, float(now)
