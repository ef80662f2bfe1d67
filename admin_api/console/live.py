"""Live pages: a server-sent event stream that says when what a page shows has changed.

Stateless, so any replica serves any page: every few seconds the stream reads a mark (the
newest ticket change for the queue; a ticket's newest message, activity and change for its
page, core/db/queries.py) and sends `changed` when it moves. The page then fetches the part
that changed. A stream lasts a minute and the browser reconnects (`retry`), so no stream
holds up a shutdown or a connection for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from admin_api.console.app import find_signed_in
from core.db.database import Database
from core.db.queries import queue_mark, ticket_mark

router = APIRouter(include_in_schema=False)

EVERY_SECONDS = 2.0
STREAM_SECONDS = 60.0


@router.get("/live")
async def live(request: Request, ticket: int = 0) -> StreamingResponse:
    db: Database = request.app.state.db
    # Checked in a session of its own: a stream holds no unit of work (nor, on SQLite, the
    # one writer's turn) while it lasts.
    async with db.sessions() as session:
        await find_signed_in(request, session)
    state = request.app.state
    every = float(getattr(state, "live_every_seconds", EVERY_SECONDS))
    lasts = float(getattr(state, "live_stream_seconds", STREAM_SECONDS))

    async def mark() -> str:
        async with db.sessions() as session:
            if ticket:
                return await ticket_mark(session, ticket)
            return await queue_mark(session)

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        last = await mark()
        loop = asyncio.get_running_loop()
        ends = loop.time() + lasts
        while loop.time() < ends and not await request.is_disconnected():
            await asyncio.sleep(every)
            now = await mark()
            if now != last:
                last = now
                yield "event: changed\ndata: {}\n\n"
            else:
                yield ": still here\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
