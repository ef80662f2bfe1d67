"""Two turns of one conversation at once are serialised: none lost, none interleaved.

On PostgreSQL the turns really overlap (a pool of connections) and the loser of each race
retries; on SQLite they queue for the single writer. Both must give the same outcome.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Table, func, select

from core.db import tables as t
from core.db.database import Database
from dialogs.engine import DialogEngine
from tests.dialogs.conftest import Customer, Send, file_complaint_steps, verify_dialog


async def count(db: Database, table: Table) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def conversation(db: Database) -> dict:
    async with db.engine.connect() as conn:
        return dict((await conn.execute(select(t.conversations))).mappings().one())


async def test_first_contact_from_many_turns_at_once_registers_one_customer(
    db: Database, engine: DialogEngine
) -> None:
    customer = Customer(engine, user_id="new")
    turns = [customer.said(f"hello {n}") for n in range(6)]
    answers = await asyncio.gather(*(engine.handle_turn(said) for said in turns))
    assert all(answer and "Hi Ada" in answer[0].text for answer in answers)
    assert await count(db, t.customers) == 1
    assert await count(db, t.channel_identities) == 1
    state = await conversation(db)
    said_texts = [h["text"] for h in state["history"] if h["who"] == "customer"]
    assert sorted(said_texts) == sorted(f"hello {n}" for n in range(6))
    assert state["version"] == 6  # the first turn creates it, then one write a turn: none lost


async def test_concurrent_messages_to_a_ticket_are_all_kept_in_order_of_commit(
    db: Database, engine: DialogEngine
) -> None:
    customer = await verify_dialog(engine, file_complaint_steps())
    before = (await conversation(db))["version"]
    turns = [customer.said(f"detail {n}") for n in range(8)]
    answers = await asyncio.gather(*(engine.handle_turn(said) for said in turns))
    assert all("Added to CR-1001" in answer[0].text for answer in answers)
    async with db.engine.connect() as conn:
        bodies = (
            (await conn.execute(select(t.messages.c.body).where(t.messages.c.ticket_id == 1)))
            .scalars()
            .all()
        )
    assert sorted(b for b in bodies if b.startswith("detail")) == [f"detail {n}" for n in range(8)]
    state = await conversation(db)
    assert state["version"] == before + 8
    assert set(state["slots"]["seen"]) >= {said.message_id for said in turns}


async def test_a_message_delivered_several_times_at_once_has_one_effect(
    db: Database, engine: DialogEngine
) -> None:
    customer = await verify_dialog(engine, file_complaint_steps())
    said = customer.said(Send("only once", message_id="tg-77"))
    answers = await asyncio.gather(*(engine.handle_turn(said) for _ in range(4)))
    # Every copy gets the same answer (a lost answer is not lost); the effect happens once.
    assert all(answer == answers[0] for answer in answers)
    assert "Added to" in answers[0][0].text
    async with db.engine.connect() as conn:
        copies = (
            await conn.execute(select(func.count()).where(t.messages.c.body == "only once"))
        ).scalar_one()
    assert copies == 1


async def test_two_confirmations_at_once_open_one_ticket(
    db: Database, engine: DialogEngine
) -> None:
    customer = await verify_dialog(engine, file_complaint_steps()[:-1])
    first, second = customer.said("yes"), customer.said("yes")
    answers = await asyncio.gather(engine.handle_turn(first), engine.handle_turn(second))
    texts = sorted(answer[0].text for answer in answers)
    assert await count(db, t.tickets) == 1
    # Serialised: one turn opened the ticket, the other was then a message on it.
    assert any("is open" in text for text in texts)
    assert any("Added to CR-1001" in text for text in texts)
