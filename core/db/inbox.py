"""Inbound deliveries recorded under the platform's unique key before they are processed.

Two ways to use it. The functions work in the caller's session: record, claim with a lease,
mark, keep a payload, replay what is pending (Slack, SMS, email). `Inbox` is one source's
deliveries answered by a turn, each step its own short transaction (Telegram): a delivery
moves `pending` (recorded, not yet answered) -> `answered` (the turn committed; its replies
are stored in the row's payload and are being sent) -> `done`, or to `parked` with the
reason it can never succeed. A redelivery of a `done`/`parked` row is a no-op; of an
`answered` row it sends the stored replies again (the process died before they went out),
so a committed turn's answer is never lost; of a `pending` row it runs the turn again (the
engine dedupes on the platform's message id). The row is durable before the turn runs,
whatever the turn does with its own transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import tables as t
from core.db.database import Database
from core.model import utcnow

i = t.inbox.c


async def record(
    session: AsyncSession, source: str, key: str, payload: dict[str, Any] | None = None
) -> bool:
    """Record a delivery; False when the key was seen before (a redelivery)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {
        "source": source,
        "key": key,
        "status": "pending",
        "payload": payload,
        "received_at": utcnow(),
        "attempts": 0,
    }
    stmt = insert(t.inbox).values(**values).on_conflict_do_nothing().returning(i.id)
    return (await session.execute(stmt)).first() is not None


async def status_of(session: AsyncSession, source: str, key: str) -> str | None:
    stmt = select(i.status).where(i.source == source, i.key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def payload_of(session: AsyncSession, source: str, key: str) -> dict[str, Any] | None:
    stmt = select(i.payload).where(i.source == source, i.key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def mark(
    session: AsyncSession, source: str, key: str, status: str, error: str | None = None
) -> None:
    """Set a delivery's status: done, or parked with the reason it can never succeed."""
    await session.execute(
        update(t.inbox)
        .where(i.source == source, i.key == key)
        .values(status=status, error=error[:2000] if error else None, done_at=utcnow())
    )


async def claim(session: AsyncSession, source: str, key: str, lease: timedelta) -> int | None:
    """Claim an unfinished delivery for `lease`: its attempt number, or None.

    One conditional UPDATE, so of two copies racing (in this process or on another replica)
    exactly one wins; None when the delivery is finished or another copy holds the claim.
    """
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
    attempt = (await session.execute(stmt)).scalar_one_or_none()
    return int(attempt) if attempt is not None else None


async def release(session: AsyncSession, source: str, key: str) -> None:
    """Give a claim back after a failed attempt, so that the next copy runs at once."""
    await session.execute(
        update(t.inbox)
        .where(i.source == source, i.key == key, i.status == "pending")
        .values(claimed_until=None)
    )


async def keep(session: AsyncSession, source: str, key: str, payload: dict[str, Any]) -> None:
    """Replace an unfinished delivery's payload (what a later attempt resumes from)."""
    await session.execute(
        update(t.inbox)
        .where(i.source == source, i.key == key, i.status == "pending")
        .values(payload=payload)
    )


async def pending(
    session: AsyncSession, source: str, older_than: timedelta, limit: int
) -> list[tuple[str, dict[str, Any] | None]]:
    """Unfinished deliveries nobody holds, received before `older_than` ago: (key, payload)."""
    now = utcnow()
    rows = await session.execute(
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


_UNFINISHED = ("pending", "answered")


class Stage(enum.Enum):
    NEW = "new"  # first delivery: run the turn
    RETRY = "retry"  # an earlier attempt failed before the turn's replies were stored
    ANSWERED = "answered"  # replies stored: send them (again)
    FINISHED = "finished"  # done or parked: nothing to do


@dataclass(frozen=True, slots=True)
class Delivery:
    stage: Stage
    attempts: int = 0
    replies: tuple[dict[str, Any], ...] = ()  # as the turn stored them (Reply.to_json)
    sent: int = 0  # how many of `replies` are known to have gone out


class Inbox:
    """One source's deliveries that answer with a turn's replies, kept beside the row (the
    module's notes on the stages); each call is one statement in its own short transaction."""

    def __init__(self, db: Database, source: str) -> None:
        self.db = db
        self.source = source
        insert = postgresql.insert if db.is_postgres else sqlite.insert
        stmt = insert(t.inbox)
        # One round trip whatever happened before: insert, or count one more attempt of an
        # unfinished delivery, or (no row returned) a finished one.
        self._begin = stmt.on_conflict_do_update(
            index_elements=[i.source, i.key],
            set_={"attempts": i.attempts + 1},
            where=i.status.in_(_UNFINISHED),
        ).returning(i.status, i.payload, i.attempts)

    async def begin(self, key: str) -> Delivery:
        """Record a delivery (or one more attempt of it) and say what is left to do."""
        async with self.db.sessions() as session:
            delivery = await self.begin_in(session, key)
            await session.commit()
        return delivery

    async def begin_in(self, session: AsyncSession, key: str) -> Delivery:
        """`begin` in the caller's transaction: a turn's own, so that the record and the turn
        commit together (one commit for a new message), or roll back together."""
        values = {
            "source": self.source,
            "key": key,
            "status": "pending",
            "payload": None,
            "received_at": utcnow(),
            "attempts": 1,
        }
        row = (await session.execute(self._begin, values)).first()
        if row is None:
            return Delivery(Stage.FINISHED)
        status, payload, attempts = row
        if status == "answered":
            payload = payload or {}
            replies = tuple(payload.get("replies") or ())
            return Delivery(Stage.ANSWERED, attempts, replies, int(payload.get("sent", 0)))
        return Delivery(Stage.NEW if attempts == 1 else Stage.RETRY, attempts)

    async def answered(self, key: str, replies: Sequence[dict[str, Any]], *, sent: int = 0) -> None:
        """The turn committed: keep its replies (as JSON) until they are known to be sent."""
        payload = {"replies": list(replies), "sent": sent}
        await self._set(key, status="answered", payload=payload)

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
        await self._set(key, status="done", done_at=utcnow(), error=note)

    async def park(self, key: str, reason: str, update: dict[str, Any] | None = None) -> None:
        """It can never succeed: keep it (and what arrived) with the reason, for a human."""
        values: dict[str, Any] = {"status": "parked", "error": reason[:2000], "done_at": utcnow()}
        if update is not None:
            values["payload"] = {"update": update}
        await self._set(key, **values)

    async def _set(self, key: str, **values: Any) -> None:
        async with self.db.sessions() as session:
            await session.execute(
                update(t.inbox).where(i.source == self.source, i.key == key).values(**values)
            )
            await session.commit()
