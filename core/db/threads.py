"""The Slack desk's thread map: one thread per ticket, found both ways
(core.ports.ThreadMap, `uow.threads`)."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import tables as t
from core.model import utcnow
from core.ports import Thread

_th = t.slack_threads.c


class SqlThreadMap:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def thread_of(self, ticket_id: int) -> Thread | None:
        stmt = select(_th.ticket_id, _th.team_id, _th.channel_id, _th.thread_ts).where(
            _th.ticket_id == ticket_id
        )
        row = (await self.session.execute(stmt)).first()
        return Thread(*row) if row else None

    async def ticket_of(self, team_id: str, channel_id: str, thread_ts: str) -> int | None:
        stmt = select(_th.ticket_id).where(
            _th.team_id == team_id, _th.channel_id == channel_id, _th.thread_ts == thread_ts
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def save(self, thread: Thread) -> None:
        await self.session.execute(
            insert(t.slack_threads).values(
                ticket_id=thread.ticket_id,
                team_id=thread.team_id,
                channel_id=thread.channel_id,
                thread_ts=thread.thread_ts,
                created_at=utcnow(),
            )
        )
