"""Ticket upkeep beside the relay: auto-assign, SLA breach announcements, auto-close."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from bots.housekeeping import Housekeeping
from bots.relay import Handlers, Relay
from core import services
from core.config import Settings
from core.db import tables as t
from core.db.database import Database
from core.db.flags import AUTO_ASSIGN, write_flag
from core.lifecycle import Status
from core.model import Channel, utcnow


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg,arg-type]


async def ticket(db: Database, **kw: object) -> int:
    async with db.uow() as uow:
        customer, _ = await services.find_or_register_customer(
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
