"""The outbox relay: carries out every domain event's effects, each exactly once.

A relay claims outbox rows (leases, `FOR UPDATE SKIP LOCKED` on PostgreSQL, see
core/db/outbox.py) and runs, per event type, a list of named handlers. One row in
`outbox_deliveries` per (event, handler) is the idempotency key: `sending` is committed
before a handler's side effect and `done` (with the provider's id) after it, so a crash
repeats at most the message that was in flight, never one already recorded as done.

Each handler succeeds, retries (exponential backoff with jitter, at least what the platform
asked for in `RetryLater.seconds`) or is parked as a dead letter on its own; a row is done
when all its handlers are. Rows are worked concurrently, one task each, so a chat that a
channel adapter is pacing never holds up other chats. Order is kept per destination: each
handler belongs to a lane (the customer's chat, their email, the Slack desk, ...), and a
ticket's deliveries in one lane go out in the order of its events, within a relay. Lanes do
not wait for each other: an agent's reply reaches the customer's chat while the desk's
Slack updates, paced by Slack, are still queued. A claim marks the claimed rows' deliveries
`sending` in the same transaction (a delivery waiting behind an earlier one of its ticket
and lane is marked when its turn comes); the results (`done`, retries) and the rows'
release are group-committed: whatever the running tasks need written is flushed together in
one transaction. On PostgreSQL the relay keeps one connection for claims and one for the
journal (no pool checkout and pre-ping per transaction; a stale one after a server restart
is replaced and the transaction retried at once).

The rules live here; their SQL (the journal's statements, the held connections, LISTEN) is
core/db/journal.py.

Pickup is prompt: a commit in the relay's own process wakes it at once; other processes'
commits reach it by LISTEN/NOTIFY on PostgreSQL (channel `careline_outbox`), by a short poll
on SQLite, where only one relay process may run (`SqliteRelayLock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bots.channels import PermanentFailure, RetryLater, Unreachable
from core.db.database import Database
from core.db.journal import (
    Connection,
    DeliveryState,
    HeldConnection,
    begin_deliveries,
    listen,
    outcome_row,
    record,
    settle_row,
    sleep_or_stop,
)
from core.db.outbox import OutboxRow, SqliteRelayLock, claim
from core.events import Event
from core.model import utcnow

log = logging.getLogger(__name__)

FINAL = frozenset({"done", "skipped", "dead"})


class Skip(Exception):
    """Raised by a handler when there is nothing to send (no address, not wanted, erased)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One (event, handler) pair being carried out; `key` is its idempotency key."""

    event_id: int
    event_type: str
    payload: dict[str, Any]
    handler: str
    attempt: int  # 1 for the first try
    created_at: datetime

    @property
    def key(self) -> str:
        """Stable across retries and relays: give it to providers that dedupe by key."""
        return f"careline-{self.event_id}-{self.handler}"

    @property
    def event(self) -> Event:
        return Event.from_payload(self.event_type, self.payload)


Handler = Callable[[Delivery], Awaitable[str | None]]
"""Carries out one effect and returns the provider's id (or None).

Raises `RetryLater` (transient), `PermanentFailure` (never retried), `Skip` (nothing to do);
any other exception is retried like a transient failure and dead-lettered in the end.
"""


class Handlers:
    """The registry of named handlers per event type. Open: any area adds its own.

    A handler's lane is where its messages go (by default its name up to the first dot:
    `slack.open_thread` and `slack.note_change` share the lane `slack`). A ticket's
    deliveries in one lane keep the order of its events; different lanes never wait for
    each other. Handlers that write to the same place under different names share a lane.
    """

    def __init__(self) -> None:
        self._by_event: dict[str, dict[str, Handler]] = {}
        self._lanes: dict[str, str] = {}

    def add(
        self, event: type[Event] | str, name: str, handler: Handler, *, lane: str | None = None
    ) -> None:
        event_type = event if isinstance(event, str) else event.__name__
        if len(name) > 64:
            raise ValueError(f"handler name {name!r} is longer than 64 characters")
        named = self._by_event.setdefault(event_type, {})
        if name in named:
            raise ValueError(f"{event_type} already has a handler named {name!r}")
        lane = lane or name.split(".", 1)[0]
        if self._lanes.setdefault(name, lane) != lane:
            raise ValueError(f"handler {name!r} is in lane {self._lanes[name]!r}, not {lane!r}")
        named[name] = handler

    def lane(self, name: str) -> str:
        return self._lanes.get(name, name)

    def for_event(self, event_type: str) -> list[tuple[str, Handler]]:
        return list(self._by_event.get(event_type, {}).items())

    def names(self, event_type: str) -> list[str]:
        return list(self._by_event.get(event_type, {}))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with equal jitter, never sooner than the platform asked."""

    base_seconds: float = 2.0
    max_seconds: float = 3600.0
    max_attempts: int = 12

    def delay(self, attempt: int, at_least: float = 0.0) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return max(at_least, ceiling / 2 + random.uniform(0, ceiling / 2))


@dataclass(slots=True)
class _Outcome:
    handler: str
    status: str  # done, skipped, failed, dead
    provider_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(slots=True)
class _Work:
    """What tasks want written; flushed together in one transaction."""

    begins: list[tuple[int, list[str], asyncio.Future[dict[str, DeliveryState]]]] = field(
        default_factory=list
    )
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    settles: list[tuple[dict[str, Any], asyncio.Future[None]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.begins or self.outcomes or self.settles)


class _Journal:
    """Group commit of delivery bookkeeping for one relay."""

    def __init__(self, db: Database, worker: str, lease: timedelta) -> None:
        self.db = db
        self.worker = worker
        self.lease = lease
        self._link = HeldConnection(db)
        self._work = _Work()
        self._unrecorded: list[dict[str, Any]] = []  # outcomes a failed flush did not write
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> bool:
        """Start the flusher unless it runs; True when this call started it."""
        if self._task is not None and not self._task.done():
            return False
        self._task = asyncio.create_task(self._flush_forever(), name="relay-journal")
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Record what was already sent before going: otherwise those deliveries stay
        # `sending` and are sent again once the lease expires.
        leftover, self._work = self._work, _Work()
        _fail(leftover, RuntimeError("the relay stopped"))
        outcomes, self._unrecorded = [*self._unrecorded, *leftover.outcomes], []
        if outcomes:
            try:
                await asyncio.wait_for(self._flush(_Work(outcomes=outcomes)), 5)
            except Exception as exc:
                log.warning("relay: %d delivery records not written at stop: %s",
                            len(outcomes), exc)  # fmt: skip
        await self._link.close()

    async def begin(self, event_id: int, handlers: list[str]) -> dict[str, DeliveryState]:
        future: asyncio.Future[dict[str, DeliveryState]] = (
            asyncio.get_running_loop().create_future()
        )
        self._work.begins.append((event_id, handlers, future))
        self._wake.set()
        return await future

    def outcome(self, event_id: int, result: _Outcome) -> None:
        self._work.outcomes.append(
            outcome_row(
                event_id,
                result.handler,
                result.status,
                result.provider_id,
                result.error,
                result.next_attempt_at,
            )
        )
        self._wake.set()

    async def settle(self, row_id: int, status: str, available_at: datetime, error: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._work.settles.append((settle_row(row_id, status, available_at, error), future))
        self._wake.set()
        await future

    async def _flush_forever(self) -> None:
        while True:
            if self._unrecorded:
                # Retry recording sends that already happened, on their own: one write the
                # database refuses must not hold back every other delivery.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                await self._record_unrecorded()
            else:
                await self._wake.wait()
            self._wake.clear()
            work, self._work = self._work, _Work()
            if not work:
                continue
            try:
                await self._flush(work)
            except asyncio.CancelledError:
                self._unrecorded += work.outcomes
                _fail(work, RuntimeError("the relay stopped"))
                raise
            except Exception as exc:  # the database hiccupped: every waiter retries its row
                log.warning("relay: writing delivery records failed: %s", exc)
                # Messages already sent must still be recorded `done`, or they are sent again
                # when their lease expires: keep their outcomes and retry them.
                self._unrecorded += work.outcomes
                _fail(work, exc)

    async def _record_unrecorded(self) -> None:
        pending, self._unrecorded = self._unrecorded, []
        try:
            await self._flush(_Work(outcomes=pending))
        except Exception as exc:
            log.warning("relay: %d delivery records still not written: %s", len(pending), exc)
            self._unrecorded[:0] = pending

    async def _flush(self, work: _Work) -> None:
        states = await self._link.transaction(functools.partial(self._write, work))
        for event_id, _, future in work.begins:
            if not future.done():
                future.set_result(states.get(event_id, {}))
        for _, settled in work.settles:
            if not settled.done():
                settled.set_result(None)

    async def _write(self, work: _Work, conn: Connection) -> dict[int, dict[str, DeliveryState]]:
        now = utcnow()
        states: dict[int, dict[str, DeliveryState]] = {}
        if work.begins:
            pairs = [(event_id, name) for event_id, names, _ in work.begins for name in names]
            states = await begin_deliveries(conn, self.db.is_postgres, pairs, now, self.lease)
        settles = [values for values, _ in work.settles]
        await record(conn, self.worker, work.outcomes, settles, now)
        return states


def _fail(work: _Work, exc: BaseException) -> None:
    for _, _, begun in work.begins:
        if not begun.done():
            begun.set_exception(exc)
    for _, settled in work.settles:
        if not settled.done():
            settled.set_exception(exc)


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
        self._journal = _Journal(db, self.worker, lease)
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
        its turn comes (`_Journal.begin`): a mark must not age towards the lease while it
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
    ) -> _Outcome | None:
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
    ) -> _Outcome:
        delivery = Delivery(
            row.id, row.event_type, row.payload, name, state.attempts, row.created_at
        )
        if self.on_handler_start is not None:
            self.on_handler_start(delivery)
        try:
            provider_id = await handler(delivery)
        except Skip as why:
            return _Outcome(name, "skipped", error=str(why) or "nothing to send")
        except PermanentFailure as exc:
            log.warning("relay: %s for event %s failed for good: %s", name, row.id, exc)
            return _Outcome(name, "dead", error=f"permanent failure: {exc}")
        except Unreachable as exc:  # a handler that has no fallback of its own
            return _Outcome(name, "dead", error=f"unreachable: {exc}")
        except RetryLater as exc:
            return self._retry_or_bury(name, state.attempts, f"retry later: {exc}", exc.seconds)
        except Exception as exc:
            log.exception("relay: handler %s failed on event %s", name, row.id)
            return self._retry_or_bury(name, state.attempts, f"{type(exc).__name__}: {exc}", 0.0)
        return _Outcome(name, "done", provider_id=provider_id)

    def _retry_or_bury(self, name: str, attempts: int, error: str, at_least: float) -> _Outcome:
        if attempts >= self.retry.max_attempts:
            return _Outcome(name, "dead", error=f"gave up after {attempts} attempts; {error}")
        delay = self.retry.delay(attempts, at_least)
        return _Outcome(name, "failed", error=error, next_attempt_at=utcnow() + _secs(delay))

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


def delivery_names(handlers: Handlers, events: Iterable[type[Event]]) -> dict[str, list[str]]:
    """Which handlers each event type runs (for `careline` diagnostics and docs)."""
    return {e.__name__: handlers.names(e.__name__) for e in events}
