"""The inbox of platform deliveries, with the replies of each turn kept beside it.

A delivery moves `pending` (recorded, not yet answered) -> `answered` (the turn committed;
its replies are stored in the row's payload and are being sent) -> `done`, or to `parked`
with the reason it can never succeed. A redelivery of a `done`/`parked` row is a no-op; of
an `answered` row it sends the stored replies again (the process died before they went
out), so a committed turn's answer is never lost; of a `pending` row it runs the turn again
(the engine dedupes on the platform's message id).

Every call is one statement in its own short transaction: the row must be durable before
the turn runs, whatever the turn does with its own transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite

from core.db import tables as t
from core.db.database import Database
from core.model import utcnow
from dialogs.turn import Reply

_i = t.inbox.c
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
    replies: tuple[Reply, ...] = ()
    sent: int = 0  # how many of `replies` are known to have gone out


def replies_to_json(replies: Sequence[Reply]) -> list[dict[str, Any]]:
    return [reply.to_json() for reply in replies]


def replies_from_json(raw: Any) -> tuple[Reply, ...]:
    return tuple(Reply.from_json(item) for item in raw or ())


class Inbox:
    """Inbox rows of one source (`telegram`, `slack`, ...)."""

    def __init__(self, db: Database, source: str) -> None:
        self.db = db
        self.source = source
        insert = postgresql.insert if db.is_postgres else sqlite.insert
        stmt = insert(t.inbox)
        # One round trip whatever happened before: insert, or count one more attempt of an
        # unfinished delivery, or (no row returned) a finished one.
        self._begin = stmt.on_conflict_do_update(
            index_elements=[_i.source, _i.key],
            set_={"attempts": t.inbox.c.attempts + 1},
            where=_i.status.in_(_UNFINISHED),
        ).returning(_i.status, _i.payload, _i.attempts)

    async def begin(self, key: str) -> Delivery:
        """Record a delivery (or one more attempt of it) and say what is left to do."""
        values = {
            "source": self.source,
            "key": key,
            "status": "pending",
            "payload": None,
            "received_at": utcnow(),
            "attempts": 1,
        }
        async with self.db.sessions() as session:
            row = (await session.execute(self._begin, values)).first()
            await session.commit()
        if row is None:
            return Delivery(Stage.FINISHED)
        status, payload, attempts = row
        if status == "answered":
            payload = payload or {}
            replies = replies_from_json(payload.get("replies"))
            return Delivery(Stage.ANSWERED, attempts, replies, int(payload.get("sent", 0)))
        return Delivery(Stage.NEW if attempts == 1 else Stage.RETRY, attempts)

    async def answered(self, key: str, replies: Sequence[Reply], *, sent: int = 0) -> None:
        """The turn committed: keep its replies until they are known to be sent."""
        payload = {"replies": replies_to_json(replies), "sent": sent}
        await self._set(key, status="answered", payload=payload)

    async def progress(self, key: str, replies: Sequence[Reply], sent: int, error: str) -> None:
        """Sending stopped after `sent` replies; the next attempt resumes there."""
        payload = {"replies": replies_to_json(replies), "sent": sent}
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
                update(t.inbox).where(_i.source == self.source, _i.key == key).values(**values)
            )
            await session.commit()
