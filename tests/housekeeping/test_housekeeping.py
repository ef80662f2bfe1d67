"""Ticket upkeep beside the relay: auto-assign, SLA breach announcements, auto-close."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from bots import housekeeping
from bots.housekeeping import Housekeeping
from bots.relay import Handlers, Relay
from core import services
from core.config import Settings
from core.db import tables as t
from core.db.database import Database
from core.db.flags import AUTO_ASSIGN, write_flag
from core.lifecycle import Status
from core.model import Channel, utcnow
from tests.support.customers import register_customer


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg,arg-type]


async def ticket(db: Database, **kw: object) -> int:
    async with db.uow() as uow:
        customer, _ = await register_customer(
            uow, channel=Channel.WEBCHAT, external_id="v", chat_id="v"
        )
        opened = await services.open_ticket(
            uow, customer_id=customer.id or 0, description="help", category="billing",
            **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        await uow.commit()
    return opened.id or 0


async def agent(db: Database) -> int:
    async with db.uow() as uow:
        created = await services.create_agent(uow, name="Ann", email="ann@example.com")
        await uow.commit()
    return created.id or 0


async def event_names(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(select(t.outbox.c.event_type))).scalars())


async def test_auto_assign_follows_the_switch(db: Database) -> None:
    ticket_id = await ticket(db)
    agent_id = await agent(db)
    keeper = Housekeeping(db, settings(auto_assign=True))
    async with db.uow() as uow:
        await write_flag(uow.session, AUTO_ASSIGN, False)
        await uow.commit()
    assert (await keeper.tick())["assigned"] == 0
    async with db.uow() as uow:
        await write_flag(uow.session, AUTO_ASSIGN, True)
        await uow.commit()
    assert (await keeper.tick())["assigned"] == 1
    async with db.uow() as uow:
        assert (await services.get_ticket(uow, ticket_id)).assignee_id == agent_id


async def test_new_tickets_are_assigned_promptly_through_the_relay(db: Database) -> None:
    agent_id = await agent(db)
    handlers = Handlers()
    Housekeeping(db, settings()).register(handlers)
    ticket_id = await ticket(db)
    assert await Relay(db, handlers).drain_once() == 1  # the TicketOpened row, no round needed
    async with db.uow() as uow:
        assert (await services.get_ticket(uow, ticket_id)).assignee_id == agent_id


async def test_each_sla_breach_is_announced_once(db: Database) -> None:
    late = await ticket(db, priority="urgent", now=utcnow() - timedelta(hours=5))
    await ticket(db, priority="low")
    keeper = Housekeeping(db, settings(auto_assign=False))
    first = await keeper.tick()
    second = await keeper.tick()
    assert first["sla_breaches"] == 2  # first response and resolution of one ticket
    assert second["sla_breaches"] == 0
    breaches = [n for n in await event_names(db) if n == "SlaBreached"]
    assert len(breaches) == 2
    async with db.uow() as uow:
        kinds = [getattr(e, "kind", "") for e in await uow.tickets.timeline(late)]
    assert {"sla_breached:first_response", "sla_breached:resolution"} <= set(kinds)


async def test_resolved_tickets_close_after_the_configured_silence(db: Database) -> None:
    old = await ticket(db)
    async with db.uow() as uow:
        await services.resolve_ticket(uow, old, now=utcnow() - timedelta(days=3))
        await uow.commit()
    assert (await Housekeeping(db, settings(auto_close_days=5)).tick())["auto_closed"] == 0
    assert (await Housekeeping(db, settings(auto_close_days=2)).tick())["auto_closed"] == 1
    async with db.uow() as uow:
        assert (await services.get_ticket(uow, old)).status == Status.CLOSED


async def test_several_relays_announce_a_breach_once(pg_db: Database) -> None:
    await ticket(pg_db, priority="urgent", now=utcnow() - timedelta(hours=5))
    others = [Database(pg_db.url) for _ in range(3)]
    try:
        keepers = [Housekeeping(db, settings(auto_assign=False)) for db in [pg_db, *others]]
        await asyncio.gather(*(k.tick() for k in keepers))
        await asyncio.gather(*(k.tick() for k in keepers))
    finally:
        for db in others:
            await db.dispose()
    assert [n for n in await event_names(pg_db) if n == "SlaBreached"] == ["SlaBreached"] * 2


# --- retention ---------------------------------------------------------------------------


async def seed_reliable_messaging(db: Database) -> None:
    """Inbox rows and outbox events, old (40 days) and recent, in every state."""
    old, recent = utcnow() - timedelta(days=40), utcnow() - timedelta(days=1)
    inbox = [
        {"source": "telegram", "key": f"{age}-{status}-{n}", "status": status,
         "received_at": at, "done_at": at if status != "pending" else None, "attempts": 1}
        for age, at in (("old", old), ("recent", recent))
        for status in ("done", "pending", "answered", "parked")
        for n in range(3)
    ]  # fmt: skip
    outbox = [
        {"event_type": f"{age}-{status}", "payload": {}, "status": status,
         "created_at": at, "available_at": at}
        for age, at in (("old", old), ("recent", recent))
        for status in ("done", "dead", "pending")
        for _ in range(3)
    ]  # fmt: skip
    async with db.engine.begin() as conn:
        await conn.execute(insert(t.inbox), inbox)
        await conn.execute(insert(t.outbox), outbox)
        ids = (await conn.execute(select(t.outbox.c.id))).scalars().all()
        await conn.execute(
            insert(t.outbox_deliveries),
            [{"event_id": i, "handler": "customer_email", "status": "done", "updated_at": old}
             for i in ids],
        )  # fmt: skip


async def remaining(db: Database) -> tuple[list[str], list[str], int]:
    async with db.engine.connect() as conn:
        keys = (await conn.execute(select(t.inbox.c.key).order_by(t.inbox.c.key))).scalars()
        events = (await conn.execute(select(t.outbox.c.event_type))).scalars()
        deliveries = await conn.scalar(select(func.count()).select_from(t.outbox_deliveries))
        return [k.rsplit("-", 1)[0] for k in keys], sorted(set(events)), int(deliveries or 0)


async def test_retention_forgets_old_handled_deliveries_and_sent_events(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(housekeeping, "PRUNE_BATCH", 2)  # several batches per table
    await seed_reliable_messaging(db)
    async with db.engine.begin() as conn:  # the newest event is old and sent, but stays
        await conn.execute(insert(t.outbox).values(
            event_type="newest", payload={}, status="done",
            created_at=utcnow() - timedelta(days=50), available_at=utcnow() - timedelta(days=50),
        ))  # fmt: skip
    keeper = Housekeeping(db, settings(retention_days=30))

    assert await keeper.prune() == {"inbox_pruned": 9, "outbox_pruned": 3}

    keys, events, deliveries = await remaining(db)
    assert sorted(set(keys)) == [
        "old-parked", "recent-answered", "recent-done", "recent-parked", "recent-pending",
    ]  # fmt: skip
    assert events == ["newest", "old-dead", "old-pending", "recent-dead", "recent-done",
                      "recent-pending"]  # fmt: skip
    assert deliveries == 15  # the pruned events' deliveries went with them
    assert await keeper.prune() == {"inbox_pruned": 0, "outbox_pruned": 0}


async def test_retention_zero_keeps_everything_and_rounds_are_hourly(db: Database) -> None:
    await seed_reliable_messaging(db)
    before = await remaining(db)
    assert await Housekeeping(db, settings(retention_days=0)).prune() == {
        "inbox_pruned": 0, "outbox_pruned": 0,
    }  # fmt: skip
    assert await remaining(db) == before

    keeper = Housekeeping(db, settings(retention_days=30, auto_assign=False))
    first, second = await keeper.tick(), await keeper.tick()
    assert (first["inbox_pruned"], first["outbox_pruned"]) == (9, 3)
    assert "inbox_pruned" not in second  # the next round waits an hour


async def test_a_failed_retention_round_is_retried_at_the_next_tick(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_reliable_messaging(db)
    keeper = Housekeeping(db, settings(retention_days=30, auto_assign=False))
    real_prune = keeper.prune

    async def database_down() -> dict[str, int]:
        raise ConnectionError("the database is down")

    monkeypatch.setattr(keeper, "prune", database_down)
    with pytest.raises(ConnectionError):
        await keeper.tick()
    monkeypatch.setattr(keeper, "prune", real_prune)
    assert (await keeper.tick())["inbox_pruned"] == 9  # not an hour later
