"""The relay itself: claims outbox rows and runs their handlers, one task per row, in order
per ticket and lane (the rules: bots/relay/__init__.py)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import Any

from bots.channels import PermanentFailure, RetryLater, Unreachable
from bots.relay.bookkeeping import GroupJournal, Outcome
from bots.relay.handlers import Delivery, Handler, Handlers, RetryPolicy, Skip
from core.db.database import Database
from core.db.journal import (
    Connection,
    DeliveryState,
    HeldConnection,
    begin_deliveries,
    listen,
    sleep_or_stop,
)
from core.db.outbox import OutboxRow, SqliteRelayLock, claim
from core.model import utcnow

log = logging.getLogger(__name__)


def default_worker_name() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{random.randrange(16**4):04x}"


class Relay:
    """Claims outbox rows and runs their handlers until stopped.

    `run(stop)` is the long-running loop (one per process, or several per PostgreSQL);
    `drain_once()` works one claimed batch to the end, for tests and one-shot commands.
    """

    def __init__(
        self,
        db: Database,
        handlers: Handlers,
        *,
        worker: str | None = None,
        batch: int = 50,
        poll_seconds: float = 0.2,
        idle_seconds: float = 2.0,
        max_in_flight: int = 500,
        retry: RetryPolicy | None = None,
        lease: timedelta = timedelta(seconds=60),
        grace_seconds: float = 10.0,
        on_handler_start: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.db = db
        self.handlers = handlers
        self.worker = (worker or default_worker_name())[:64]
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.idle_seconds = idle_seconds  # PostgreSQL safety poll: a NOTIFY can be missed
        self.max_in_flight = max_in_flight
        self.retry = retry or RetryPolicy()
        self.lease = lease
        self.grace_seconds = grace_seconds
        self.on_handler_start = on_handler_start  # the benchmark measures pickup with it
        self._journal = GroupJournal(db, self.worker, lease)
        self._claims = HeldConnection(db)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        # (ticket or customer, lane) -> when the last delivery queued in that lane is over
        self._tails: dict[Hashable, asyncio.Future[None]] = {}
        self._slot_freed = asyncio.Event()

    @classmethod
    def from_settings(
        cls, db: Database, handlers: Handlers, settings: Any, **options: Any
    ) -> Relay:
        """The relay as `careline serve` runs it (settings: core.config.Settings)."""
        return cls(
            db,
            handlers,
            batch=settings.relay_batch,
            poll_seconds=settings.relay_poll_seconds,
            retry=RetryPolicy(max_attempts=settings.relay_max_attempts),
            **options,
        )

    # --- driving ------------------------------------------------------------------------

    async def drain_once(self) -> int:
        """Claim one batch and work it to the end; returns how many rows were claimed."""
        started = self._journal.start()
        try:
            claimed = await self._claim(self.batch)
            tasks = [self._spawn(row, states) for row, states in claimed]
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            return len(claimed)
        finally:
            if started:
                await self._journal.stop()
                await self._claims.close()

    async def _claim(self, limit: int) -> list[tuple[OutboxRow, dict[str, DeliveryState]]]:
        """Lease rows and, in the same transaction, mark `sending` what can start at once.

        A delivery queued behind an earlier one of its ticket and lane is marked only when
        its turn comes (`GroupJournal.begin`): a mark must not age towards the lease while it
        waits. Such a handler is absent from its row's states.
        """

        async def work(conn: Connection) -> list[tuple[OutboxRow, dict[str, DeliveryState]]]:
            rows = await claim(self.db, self.worker, limit=limit, lease=self.lease, conn=conn)
            queued = {lane for lane, tail in self._tails.items() if not tail.done()}
            now_pairs: list[tuple[int, str]] = []
            for row in rows:
                for name in self.handlers.names(row.event_type):
                    lane = self._lane_of(row, name)
                    if lane is None or lane not in queued:
                        now_pairs.append((row.id, name))
                    if lane is not None:
                        queued.add(lane)
            states: dict[int, dict[str, DeliveryState]] = {}
            if now_pairs:
                states = await begin_deliveries(
                    conn, self.db.is_postgres, now_pairs, utcnow(), self.lease
                )
            return [(row, states.get(row.id, {})) for row in rows]

        return await self._claims.transaction(work)

    def _lane_of(self, row: OutboxRow, name: str) -> Hashable | None:
        key = _order_key(row)
        return None if key is None else (key, self.handlers.lane(name))

    async def run(self, stop: asyncio.Event) -> None:
        """Work the outbox until `stop` is set; in-flight rows get `grace_seconds` to finish."""
        lock = self._sqlite_lock()
        listener: asyncio.Task[None] | None = None
        # A commit of this process wakes the relay at once (SQLite has no NOTIFY; this also
        # saves PostgreSQL's round trip when the web and the relay share a process).
        unlisten = self.db.on_outbox_written(self._wake.set)
        try:
            self._journal.start()
            if self.db.is_postgres:
                listener = asyncio.create_task(self._listen(stop), name="relay-listen")
            log.info("relay %s started", self.worker)
            while not stop.is_set():
                room = self.max_in_flight - len(self._tasks)
                # Saturated: claim again once a batch's worth of room is free, not a few rows
                # per transaction as single slots free up.
                if room >= min(self.batch, self.max_in_flight):
                    self._wake.clear()
                    limit = min(self.batch, room)
                    try:
                        claimed = await self._claim(limit)
                    except Exception as exc:  # database away: keep trying, do not die
                        log.warning("relay: claiming outbox rows failed: %s", exc)
                        claimed = []
                        await sleep_or_stop(stop, 1.0)
                    for row, states in claimed:
                        self._spawn(row, states)
                    if len(claimed) == limit:
                        await asyncio.sleep(0)  # let the tasks start before claiming more
                        continue
                    saturated = False
                else:
                    saturated = True
                await self._wait_for_work(stop, saturated=saturated)
            await self._finish_in_flight()
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            unlisten()
            for task in list(self._tasks):
                task.cancel()
            await self._journal.stop()
            await self._claims.close()
            if lock is not None:
                lock.release()

    def _sqlite_lock(self) -> SqliteRelayLock | None:
        path = self.db.sqlite_path
        if path is None:
            return None
        lock = SqliteRelayLock(path)
        lock.acquire()
        return lock

    async def _wait_for_work(self, stop: asyncio.Event, *, saturated: bool) -> None:
        timeout = self.idle_seconds if self.db.is_postgres else self.poll_seconds
        waits = [asyncio.ensure_future(stop.wait())]
        waits.append(asyncio.ensure_future((self._slot_freed if saturated else self._wake).wait()))
        self._slot_freed.clear()
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def _finish_in_flight(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.grace_seconds)

    async def _listen(self, stop: asyncio.Event) -> None:
        """Wake on NOTIFY; reconnect when the connection drops (missed wakes: idle poll)."""
        await listen(self.db, self._wake.set, stop)

    # --- one row --------------------------------------------------------------------------

    def _spawn(self, row: OutboxRow, states: dict[str, DeliveryState]) -> asyncio.Task[None]:
        """One task per row; each of its handlers waits for its lane's earlier delivery."""
        turns: dict[str, tuple[asyncio.Future[None] | None, asyncio.Future[None]]] = {}
        loop = asyncio.get_running_loop()
        for name in self.handlers.names(row.event_type):
            lane = self._lane_of(row, name)
            if lane is None:
                continue
            over: asyncio.Future[None] = loop.create_future()
            turns[name] = (self._tails.get(lane), over)
            self._tails[lane] = over
            over.add_done_callback(functools.partial(self._forget_lane, lane))
        task = asyncio.create_task(self._work_row(row, states, turns), name=f"relay-row-{row.id}")
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()

    def _forget_lane(self, lane: Hashable, over: asyncio.Future[None]) -> None:
        if self._tails.get(lane) is over:
            del self._tails[lane]

    async def _work_row(
        self,
        row: OutboxRow,
        states: dict[str, DeliveryState],
        turns: dict[str, tuple[asyncio.Future[None] | None, asyncio.Future[None]]],
    ) -> None:
        try:
            await self._carry_out(row, states, turns)
        except asyncio.CancelledError:
            raise
        except Exception:  # the lease expires and the row is claimed again
            log.exception("relay: outbox row %s could not be worked", row.id)
        finally:
            for _, over in turns.values():  # the lanes' next deliveries may go
                if not over.done():
                    over.set_result(None)

    async def _carry_out(
        self,
        row: OutboxRow,
        states: dict[str, DeliveryState],
        turns: dict[str, tuple[asyncio.Future[None] | None, asyncio.Future[None]]],
    ) -> None:
        named = self.handlers.for_event(row.event_type)
        if not named:
            await self._journal.settle(row.id, "done", utcnow(), "")
            return
        if len(named) == 1:  # the usual case: no gather (two tasks) per row
            name, fn = named[0]
            results = [await self._in_turn(row, name, fn, states, turns.get(name))]
        else:
            results = await asyncio.gather(
                *(self._in_turn(row, n, fn, states, turns.get(n)) for n, fn in named)
            )
        for result in results:
            if result is None:  # not ours to carry out: its state says why
                continue
            self._journal.outcome(row.id, result)
            states[result.handler] = DeliveryState(
                result.status, states[result.handler].attempts, result.next_attempt_at,
                utcnow(), result.error,
            )  # fmt: skip
        await self._settle(row, named, states)

    async def _in_turn(
        self,
        row: OutboxRow,
        name: str,
        handler: Handler,
        states: dict[str, DeliveryState],
        turn: tuple[asyncio.Future[None] | None, asyncio.Future[None]] | None,
    ) -> Outcome | None:
        """Run one handler once its lane's earlier delivery is over (marking it then)."""
        before, over = turn or (None, None)
        try:
            if before is not None and not before.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(before)  # a ticket's lane goes out in order
            if name not in states:  # not marked at claim time: it waited for its turn
                states.update(await self._journal.begin(row.id, [name]))
            state = states.get(name)
            if state is None or not state.ours:
                return None
            return await self._run_handler(row, name, handler, state)
        finally:
            if over is not None and not over.done():
                over.set_result(None)

    async def _run_handler(
        self, row: OutboxRow, name: str, handler: Handler, state: DeliveryState
    ) -> Outcome:
        delivery = Delivery(
            row.id, row.event_type, row.payload, name, state.attempts, row.created_at
        )
        if self.on_handler_start is not None:
            self.on_handler_start(delivery)
        try:
            provider_id = await handler(delivery)
        except Skip as why:
            return Outcome(name, "skipped", error=str(why) or "nothing to send")
        except PermanentFailure as exc:
            log.warning("relay: %s for event %s failed for good: %s", name, row.id, exc)
            return Outcome(name, "dead", error=f"permanent failure: {exc}")
        except Unreachable as exc:  # a handler that has no fallback of its own
            return Outcome(name, "dead", error=f"unreachable: {exc}")
        except RetryLater as exc:
            return self._retry_or_bury(name, state.attempts, f"retry later: {exc}", exc.seconds)
        except Exception as exc:
            log.exception("relay: handler %s failed on event %s", name, row.id)
            return self._retry_or_bury(name, state.attempts, f"{type(exc).__name__}: {exc}", 0.0)
        return Outcome(name, "done", provider_id=provider_id)

    def _retry_or_bury(self, name: str, attempts: int, error: str, at_least: float) -> Outcome:
        if attempts >= self.retry.max_attempts:
            return Outcome(name, "dead", error=f"gave up after {attempts} attempts; {error}")
        delay = self.retry.delay(attempts, at_least)
        return Outcome(name, "failed", error=error, next_attempt_at=utcnow() + _secs(delay))

    async def _settle(
        self, row: OutboxRow, named: list[tuple[str, Handler]], states: dict[str, DeliveryState]
    ) -> None:
        now = utcnow()
        waiting: list[datetime] = []
        dead: list[str] = []
        for name, _ in named:
            state = states.get(name)
            if state is None:  # lost to a concurrent writer: look again shortly
                waiting.append(now + _secs(1.0))
            elif state.status == "dead":
                dead.append(f"{name}: {state.last_error or 'dead'}")
            elif state.status == "failed":
                waiting.append(state.next_attempt_at or now)
            elif state.status == "sending":  # another relay is on it, or it died mid-send
                waiting.append(state.updated_at + self.lease + _secs(0.05))
        if waiting:
            at = min(waiting)
            self._remember_due(at)
            await self._journal.settle(row.id, "pending", at, "; ".join(dead))
        elif dead:
            await self._journal.settle(row.id, "dead", now, "; ".join(dead))
        else:
            await self._journal.settle(row.id, "done", now, "")

    def _remember_due(self, at: datetime) -> None:
        # A retry due sooner than the idle poll must not wait for it.
        delay = max(0.0, (at - utcnow()).total_seconds())
        if delay < self.idle_seconds:
            asyncio.get_running_loop().call_later(delay + 0.001, self._wake.set)


def _order_key(row: OutboxRow) -> Hashable | None:
    for name in ("ticket_id", "customer_id"):
        value = row.payload.get(name)
        if value is not None:
            return (name, value)
    return None


def _secs(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
