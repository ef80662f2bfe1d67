"""The Slack desk's thread map: one thread per ticket, found both ways."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select

from core.db import tables as t
from core.db.database import SqlUnitOfWork
from core.model import utcnow

_th = t.slack_threads.c


@dataclass(frozen=True, slots=True)
class Thread:
    ticket_id: int
    team_id: str
    channel_id: str
    thread_ts: str


async def thread_of(uow: SqlUnitOfWork, ticket_id: int) -> Thread | None:
    row = (
        await uow.session.execute(
            select(_th.ticket_id, _th.team_id, _th.channel_id, _th.thread_ts).where(
                _th.ticket_id == ticket_id
            )
        )
    ).first()
    return Thread(*row) if row else None


async def ticket_of_thread(
    uow: SqlUnitOfWork, team_id: str, channel_id: str, thread_ts: str
) -> int | None:
    stmt = select(_th.ticket_id).where(
        _th.team_id == team_id, _th.channel_id == channel_id, _th.thread_ts == thread_ts
    )
    return (await uow.session.execute(stmt)).scalar_one_or_none()


async def save_thread(uow: SqlUnitOfWork, thread: Thread) -> None:
    await uow.session.execute(
        insert(t.slack_threads).values(
            ticket_id=thread.ticket_id,
            team_id=thread.team_id,
            channel_id=thread.channel_id,
            thread_ts=thread.thread_ts,
            created_at=utcnow(),
        )
    )
