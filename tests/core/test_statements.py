"""The hot path's statements straight through asyncpg (core.db.statements): the same rows
as SQLAlchemy's execution, in the unit of work's transaction, and SQLAlchemy's errors."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import bindparam, func, select, update

from core.db import tables as t
from core.db.database import Database, IntegrityError
from core.db.repositories import _insert_conversation, _tickets_query, _turn_query
from core.db.statements import SessionDriver, compiled, for_session
from core.lifecycle import Status
from core.model import Channel, Priority, utcnow
from tests.support.customers import customer_with_ticket


async def test_rows_are_the_ones_sqlalchemy_reads(pg_db: Database) -> None:
    """Every column type of the turn's reads comes back as a session gives it: enums, aware
    UTC datetimes, JSON, booleans."""
    async with pg_db.uow() as uow:
        customer, ticket = await customer_with_ticket(
            uow, channel=Channel.TELEGRAM, external_id="77", description="The router blinks",
            category="internet", priority=Priority.HIGH,
        )  # fmt: skip
        await uow.commit()
    async with pg_db.uow() as uow:
        state = {"state": "idle", "slots": {"seen": ["m1"], "n": 1.5}, "history": [{"a": None}]}
        identity = await uow.customers.identity(Channel.TELEGRAM, "77")
        assert identity is not None and identity.id is not None
        await uow.dialogs.save_conversation(identity.id, None, 0, **state, now=utcnow())
        await uow.commit()
    reads = [
        (_turn_query(), {"channel": Channel.TELEGRAM.value, "external_id": "77"}),
        (_tickets_query(), {"customer_id": customer.id, "limit": 5}),
    ]
    async with pg_db.sessions() as session:
        direct = for_session(session)
        assert isinstance(direct, SessionDriver)
        results = []
        for statement, params in reads:
            expected = [tuple(row) for row in (await session.execute(statement, params)).all()]
            results.append(await direct.all(statement, params))
            assert results[-1] == expected
            assert await direct.first(statement, params) == expected[0]
    turn, tickets = results
    assert turn[0][10:13] == ("idle", state["slots"], state["history"])
    (row,) = tickets
    assert row[0] == ticket.id and row[2] is Status.NEW
    assert row[3].tzinfo is UTC


async def test_statements_commit_and_roll_back_with_the_session(pg_db: Database) -> None:
    """They run in the unit of work's transaction, begun by SQLAlchemy's adapter: what a
    rolled-back unit of work wrote directly is gone, what a committed one wrote is there."""
    async with pg_db.uow() as uow:
        customer, _ = await customer_with_ticket(
            uow, channel=Channel.TELEGRAM, external_id="5", description="x", category="other",
        )  # fmt: skip
        await uow.commit()
    rename = (
        update(t.customers)
        .where(t.customers.c.id == bindparam("b_id"))
        .values(display_name=bindparam("display_name"))
    )
    for name, keep in (("Committed", True), ("Rolled back", False)):
        async with pg_db.uow() as uow:
            direct = for_session(uow.session)
            assert await direct.run(rename, {"b_id": customer.id, "display_name": name}) == 1
            # ORM work in the same transaction sees the direct write.
            assert (await uow.customers.get(customer.id or 0)).display_name == name  # type: ignore[union-attr]
            if keep:
                await uow.commit()
    async with pg_db.engine.connect() as conn:
        names = select(t.customers.c.display_name).where(t.customers.c.id == customer.id)
        assert (await conn.execute(names)).scalar_one() == "Committed"


async def test_errors_are_sqlalchemys_without_what_was_written(db: Database) -> None:
    """A unique violation is SQLAlchemy's IntegrityError (the engine retries a lost race on
    it), on either path; its text names the statement, never the values written (what a
    customer wrote, who they are), so no log line or traceback shows them. The failed
    transaction rolls back and the next unit of work runs."""
    async with db.uow() as uow:
        await customer_with_ticket(
            uow, channel=Channel.TELEGRAM, external_id="9", description="x", category="other",
        )  # fmt: skip
        identity = await uow.customers.identity(Channel.TELEGRAM, "9")
        assert identity is not None
        await uow.commit()
    written = {"email": "ada.story@example.com", "said": "Zebrafish crossing"}
    row = {"identity_id": identity.id, "state": "idle", "slots": written, "history": []}
    row.update(version=1, updated_at=utcnow())
    async with db.uow() as uow:
        await uow.dialogs.statements.run(_insert_conversation(), row)
        with pytest.raises(IntegrityError) as raised:
            await uow.dialogs.statements.run(_insert_conversation(), row)
        text = str(raised.value)
        assert "INSERT INTO conversations" in text
        assert "ada.story" not in text and "Zebrafish" not in text, text
    async with db.uow() as uow:  # the first insert rolled back with the second
        count = await uow.session.execute(select(func.count()).select_from(t.conversations))
        assert count.scalar_one() == 0


async def test_a_batch_runs_all_or_none(pg_db: Database) -> None:
    insert = t.inbox.insert()
    rows = [
        {"source": "s", "key": key, "status": "pending", "attempts": 0, "received_at": utcnow()}
        for key in ("a", "b", "a")  # the second "a" breaks the unique key
    ]
    async with pg_db.statements() as run:
        with pytest.raises(IntegrityError):
            await run.run_many(insert, rows)
        await run.run_many(insert, rows[:2])
    async with pg_db.engine.connect() as conn:
        keys = (await conn.execute(select(t.inbox.c.key).order_by(t.inbox.c.key))).scalars()
        assert list(keys) == ["a", "b"]


async def test_statements_that_cannot_run_directly_are_refused(pg_db: Database) -> None:
    """Expanding parameters (an IN list rendered per call) would need SQLAlchemy's execution."""
    expanding = select(t.inbox.c.id).where(t.inbox.c.key.in_(bindparam("keys", expanding=True)))
    with pytest.raises(ValueError, match="expanding"):
        compiled(expanding, pg_db.engine.dialect, {"keys": ["a"]})
    with pytest.raises(ValueError, match="required"):
        compiled(_tickets_query(), pg_db.engine.dialect, {"customer_id": 1})
