"""The relay rides out a PostgreSQL restart: its held connections fail once and reconnect."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from bots.relay import Delivery, Handlers, Relay
from core.db.database import Database
from core.db.migrate import migrate
from core.events import TicketOpened
from tests.relay.support import outbox_rows, put_events
from tests.support.pgcluster import PgCluster


async def _all_done(db: Database, total: int, seconds: float) -> None:
    for _ in range(int(seconds / 0.05)):
        rows = await outbox_rows(db)
        if len(rows) == total and all(r["status"] == "done" for r in rows.values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox did not drain")


@pytest.mark.postgres
async def test_relay_delivers_after_postgres_restart_retrying_its_stale_connection_at_once(
    own_cluster: PgCluster, caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()

    async def send(delivery: Delivery) -> str:
        calls[delivery.key] += 1
        return "sent"

    caplog.set_level(logging.INFO, logger="bots.relay")
    handlers = Handlers()
    handlers.add(TicketOpened, "chat", send)
    db = Database(own_cluster.url(), pool_size=4)
    await migrate(db)
    # A long idle poll: after the restart only the LISTEN reconnect wakes the relay, so its
    # claim meets the stale held connection rather than a server that is still down.
    relay = Relay(db, handlers, idle_seconds=30.0)
    stop = asyncio.Event()
    runner = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.3)  # listening
        await put_events(db, [TicketOpened(ticket_id=n) for n in range(1, 11)])
        await _all_done(db, 10, 10)

        await asyncio.to_thread(own_cluster.restart_server)
        await put_events(db, [TicketOpened(ticket_id=n) for n in range(11, 21)])
        await _all_done(db, 20, 15)
    finally:
        stop.set()
        await runner
        await db.dispose()

    assert len(calls) == 20
    assert set(calls.values()) == {1}
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "claiming outbox rows failed" in m]
    assert not [m for m in messages if "writing delivery records failed" in m]
    assert any("reconnecting" in m for m in messages)  # the stale connection was met
