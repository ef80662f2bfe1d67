"""Inbound deliveries recorded under the platform's unique key before they are processed
(the ports: core.ports.InboxRecords and core.ports.Inbox).

`SqlInboxRecords` works in the caller's transaction (`uow.inbox`): record, claim with a
lease, mark, keep a payload, replay what is pending (Slack, SMS, email), and `begin` a
delivery answered by a turn. `SqlInbox` is one source's deliveries answered by a turn, each
step its own short transaction (Telegram): a delivery moves `pending` (recorded, not yet
answered) -> `answered` (the turn committed; its replies are stored in the row's payload and
are being sent) -> `done`, or to `parked` with the reason it can never succeed. A
redelivery of a `done`/`parked` row is a no-op; of an `answered` row it sends the stored
replies again (the process died before they went out), so a committed turn's answer is
never lost; of a `pending` row it runs the turn again (the engine dedupes on the platform's
message id). The row is durable before the turn runs, or commits with it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert, Update

from core.db import tables as t
from core.db.database import Database
from core.db.statements import Statements, for_session
from core.model import utcnow
from core.ports import InboxEntry, Stage

i = t.inbox.c

_UNFINISHED = ("pending", "answered")
#: What a done mark sets. A batch of marks is one UPDATE per delivery by its unique key, all
#: sent at once: a set-based UPDATE (`key = ANY($2)`) gets a generic plan from PostgreSQL
#: that scans all of the source's rows when it was planned on a small or empty table.
_DONE = ("done_at", "error", "status")


def _insert(postgres: bool) -> Any:
    """An INSERT into the inbox in the dialect, which has its ON CONFLICT clauses (the two
    dialects' Insert classes share no typed base that has them)."""
    return (postgresql.insert if postgres else sqlite.insert)(t.inbox)


@functools.cache
def _begin_statement(postgres: bool) -> Insert:
    """One round trip whatever happened before: insert, or count one more attempt of an
    unfinished delivery, or (no row returned) a finished one."""
    return (
        _insert(postgres)
        .on_conflict_do_update(
            index_elements=[i.source, i.key],
            set_={"attempts": i.attempts + 1},
            # Not IN (...): an IN list is rendered again at every execution (SQLAlchemy's
            # "expanding" parameters), and this statement runs once per update.
            where=or_(*(i.status == status for status in _UNFINISHED)),
        )
        .returning(i.status, i.payload, i.attempts)
    )


@functools.cache
def _record_turn_statement(postgres: bool) -> Insert:
    """One round trip at a turn's end: insert the delivery with its outcome, or count one
    more attempt of a pending one; no row returned for one answered or finished before."""
    statement = _insert(postgres)
    return statement.on_conflict_do_update(
        index_elements=[i.source, i.key],
        set_={
            "attempts": i.attempts + 1,
            "status": statement.excluded.status,
            "payload": statement.excluded.payload,
        },
        where=i.status == "pending",
    ).returning(i.attempts)


def _arrival(
    source: str,
    key: str,
    *,
    status: str = "pending",
    payload: dict[str, Any] | None = None,
    attempts: int = 1,
) -> dict[str, Any]:
    """A delivery's row as it is first inserted."""
    return {
        "source": source,
        "key": key,
        "status": status,
        "payload": payload,
        "received_at": utcnow(),
        "attempts": attempts,
    }


def _unfinished(attempts: int) -> InboxEntry:
    return InboxEntry(Stage.NEW if attempts == 1 else Stage.RETRY, attempts)


class SqlInboxRecords:
    """The inbox in one transaction (core.ports.InboxRecords)."""

    def __init__(self, session: AsyncSession, statements: Statements | None = None) -> None:
        self.session = session
        # The hot path's writes (a turn's record) straight through asyncpg on PostgreSQL.
        self.statements = statements or for_session(session)

    async def record(self, source: str, key: str, payload: dict[str, Any] | None = None) -> bool:
        values = _arrival(source, key, payload=payload, attempts=0)
        insert = _insert(self.statements.postgres)
        stmt = insert.values(**values).on_conflict_do_nothing().returning(i.id)
        return (await self.session.execute(stmt)).first() is not None

    async def begin(self, source: str, key: str) -> InboxEntry:
        statement = _begin_statement(self.statements.postgres)
        row = await self.statements.first(statement, _arrival(source, key))
        if row is None:
            return InboxEntry(Stage.FINISHED)
        status, payload, attempts = row
        if status == "answered":
            payload = payload or {}
            replies = tuple(payload.get("replies") or ())
            return InboxEntry(Stage.ANSWERED, attempts, replies, int(payload.get("sent", 0)))
        return _unfinished(attempts)

    async def answered(
        self, source: str, key: str, replies: Sequence[dict[str, Any]], *, sent: int = 0
    ) -> None:
        payload = {"replies": list(replies), "sent": sent}
        values = {"b_source": source, "b_key": key, "status": "answered", "payload": payload}
        await self.statements.run(_set_statement("status", "payload"), values)

    async def record_turn(
        self, source: str, key: str, replies: Sequence[dict[str, Any]] | None
    ) -> InboxEntry | None:
        if replies is None:
            values = _arrival(source, key)
        else:
            payload = {"replies": list(replies), "sent": 0}
            values = _arrival(source, key, status="answered", payload=payload)
        statement = _record_turn_statement(self.statements.postgres)
        row = await self.statements.first(statement, values)
        return None if row is None else _unfinished(row[0])

    async def status_of(self, source: str, key: str) -> str | None:
        stmt = select(i.status).where(i.source == source, i.key == key)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def payload_of(self, source: str, key: str) -> dict[str, Any] | None:
        stmt = select(i.payload).where(i.source == source, i.key == key)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def mark(self, source: str, key: str, status: str, error: str | None = None) -> None:
        await self.session.execute(
            update(t.inbox)
            .where(i.source == source, i.key == key)
            .values(status=status, error=error[:2000] if error else None, done_at=utcnow())
        )

    async def claim(self, source: str, key: str, lease: timedelta) -> int | None:
        """One conditional UPDATE, so of two copies racing (in this process or on another
        replica) exactly one wins; None when the delivery is finished or another copy holds
        the claim."""
        now = utcnow()
        stmt = (
            update(t.inbox)
            .where(
                i.source == source,
                i.key == key,
                i.status == "pending",
                or_(i.claimed_until.is_(None), i.claimed_until < now),
            )
            .values(claimed_until=now + lease, attempts=i.attempts + 1)
            .returning(i.attempts)
        )
        attempt = (await self.session.execute(stmt)).scalar_one_or_none()
        return int(attempt) if attempt is not None else None

    async def release(self, source: str, key: str) -> None:
        """Give a claim back after a failed attempt, so that the next copy runs at once."""
        await self.session.execute(
            update(t.inbox)
            .where(i.source == source, i.key == key, i.status == "pending")
            .values(claimed_until=None)
        )

    async def keep(self, source: str, key: str, payload: dict[str, Any]) -> None:
        """Replace an unfinished delivery's payload (what a later attempt resumes from)."""
        await self.session.execute(
            update(t.inbox)
            .where(i.source == source, i.key == key, i.status == "pending")
            .values(payload=payload)
        )

    async def pending(
        self, source: str, older_than: timedelta, limit: int
    ) -> list[tuple[str, dict[str, Any] | None]]:
        now = utcnow()
        rows = await self.session.execute(
            select(i.key, i.payload)
            .where(
                i.source == source,
                i.status == "pending",
                i.received_at < now - older_than,
                or_(i.claimed_until.is_(None), i.claimed_until < now),
            )
            .order_by(i.id)
            .limit(limit)
        )
        return [(str(key), payload) for key, payload in rows.all()]


class SqlInbox:
    """One source's deliveries answered by a turn (core.ports.Inbox); each call is one
    statement in its own short transaction. A turn that records its delivery itself calls
    `uow.inbox.begin(source, key)` in its own transaction instead of `begin`.

    `done` is group-committed: the deliveries finished while one batch commits are marked
    together by the next (one round trip, one commit), and each caller returns once its own
    mark is committed, as before. The first needs no partner: at low load nothing waits."""

    def __init__(self, db: Database, source: str) -> None:
        self.db = db
        self.source = source
        self._done: list[tuple[str, asyncio.Future[None]]] = []
        self._marking: asyncio.Task[None] | None = None

    async def begin(self, key: str) -> InboxEntry:
        """Record a delivery (or one more attempt of it) and say what is left to do."""
        async with self.db.sessions() as session:
            entry = await SqlInboxRecords(session).begin(self.source, key)
            await session.commit()
        return entry

    async def answered(self, key: str, replies: Sequence[dict[str, Any]], *, sent: int = 0) -> None:
        """The turn committed: keep its replies (as JSON) until they are known to be sent."""
        async with self.db.sessions() as session:
            await SqlInboxRecords(session).answered(self.source, key, replies, sent=sent)
            await session.commit()

    async def progress(
        self, key: str, replies: Sequence[dict[str, Any]], sent: int, error: str
    ) -> None:
        """Sending stopped after `sent` replies; the next attempt resumes there."""
        payload = {"replies": list(replies), "sent": sent}
        await self._set(key, status="answered", payload=payload, error=error[:2000])

    async def failed(self, key: str, error: str) -> None:
        """This attempt failed before the turn's replies were stored; a redelivery retries."""
        await self._set(key, error=error[:2000])

    async def done(self, key: str, note: str | None = None) -> None:
        if note is not None:
            await self._set(key, status="done", done_at=utcnow(), error=note)
            return
        marked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._done.append((key, marked))
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._mark_done(), name=f"{self.source}-done")
        await marked

    async def _mark_done(self) -> None:
        """Commit the waiting marks in batches until none wait."""
        while self._done:
            batch, self._done = self._done, []
            failure: BaseException | None = None
            try:
                done = {
                    "b_source": self.source,
                    "status": "done",
                    "done_at": utcnow(),
                    "error": None,
                }
                async with self.db.statements() as run:
                    marks = [{**done, "b_key": key} for key, _ in batch]
                    await run.run_many(_set_statement(*_DONE), marks)
            except Exception as exc:  # every waiter of the batch hears it
                failure = exc
            except BaseException:  # cancelled (the server stops): nobody waits forever
                _settle(batch, RuntimeError("the inbox stopped before marking it done"))
                raise
            _settle(batch, failure)

    async def park(self, key: str, reason: str, update: dict[str, Any] | None = None) -> None:
        """It can never succeed: keep it (and what arrived) with the reason, for a human."""
        values: dict[str, Any] = {"status": "parked", "error": reason[:2000], "done_at": utcnow()}
        if update is not None:
            values["payload"] = {"update": update}
        await self._set(key, **values)

    async def _set(self, key: str, **values: Any) -> None:
        async with self.db.sessions() as session:
            statement = _set_statement(*sorted(values))
            await session.execute(statement, {"b_source": self.source, "b_key": key, **values})
            await session.commit()


def _settle(waiters: list[tuple[str, asyncio.Future[None]]], failure: BaseException | None) -> None:
    for _, marked in waiters:
        if marked.done():  # its caller was cancelled
            continue
        if failure is None:
            marked.set_result(None)
        else:
            marked.set_exception(failure)


@functools.cache
def _set_statement(*columns: str) -> Update:
    """UPDATE of one delivery's `columns`, built once per set of columns: the hot path's
    writes then skip SQLAlchemy's statement construction and cache key."""
    return (
        update(t.inbox)
        .where(i.source == bindparam("b_source"), i.key == bindparam("b_key"))
        .values({column: bindparam(column) for column in columns})
    )
