"""Every service on SQLite and on PostgreSQL (the `db` fixture runs each test on both)."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core import services
from core.db import tables as t
from core.db.database import Database
from core.errors import (
    AgentUnavailable,
    CapacityExceeded,
    Conflict,
    IllegalTransition,
    InvalidInput,
    NotFound,
)
from core.lifecycle import Status
from core.model import Author, Availability, Channel, Customer, Message, Priority, utcnow
from tests.support.customers import register_customer
from tests.support.statements import statements_run


async def outbox_events(db: Database) -> list[tuple[str, dict]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(t.outbox.c.event_type, t.outbox.c.payload).order_by(t.outbox.c.id)
        )
        return [(r[0], r[1]) for r in rows]


async def new_customer(db: Database, external_id: str = "u1") -> tuple[int, int]:
    async with db.uow() as uow:
        customer, identity = await register_customer(
            uow, channel=Channel.TELEGRAM, external_id=external_id, chat_id=f"c-{external_id}",
            display_name="Ada Lovelace",
        )  # fmt: skip
        await uow.commit()
    assert customer.id is not None
    assert identity.id is not None
    return customer.id, identity.id


async def new_agent(db: Database, name: str = "Grace", **kw: object) -> int:
    async with db.uow() as uow:
        agent = await services.create_agent(
            uow,
            name=name,
            email=f"{name.lower()}@example.com",
            **kw,  # type: ignore[arg-type]
        )
        await uow.commit()
    assert agent.id is not None
    return agent.id


async def new_ticket(db: Database, customer_id: int, **kw: object) -> int:
    async with db.uow() as uow:
        ticket = await services.open_ticket(
            uow,
            customer_id=customer_id,
            description=str(kw.pop("description", "My card was charged twice")),
            category=str(kw.pop("category", "billing")),
            **kw,  # type: ignore[arg-type]
        )
        await uow.commit()
    assert ticket.id is not None
    return ticket.id


async def test_registering_the_same_identity_twice_returns_one_customer(db: Database) -> None:
    first, _ = await new_customer(db, "42")
    second, _ = await new_customer(db, "42")
    other, _ = await new_customer(db, "43")
    assert first == second != other


async def test_a_first_contact_writes_the_customer_and_their_identity(db: Database) -> None:
    """Both rows, with what the first message told; on PostgreSQL in one statement."""
    async with statements_run(db) as seen, db.uow() as uow:
        record, registered = await services.find_or_register(
            uow.dialogs, channel=Channel.SLACK, external_id="U1", chat_id="D1",
            display_name="Ada Lovelace", language="fr",
        )  # fmt: skip
        await uow.commit()

    inserts = {kind: n for kind, n in seen.items() if kind[0] == "INSERT"}
    assert registered
    if db.is_postgres:  # the customer's insert is a CTE of the identity's
        assert inserts == {("INSERT", "channel_identities"): 1}
    else:
        assert inserts == {("INSERT", "customers"): 1, ("INSERT", "channel_identities"): 1}
    async with db.uow() as uow:
        customer = await uow.customers.get(record.customer_id)
        identity = await uow.customers.identity_by_id(record.identity_id)
    assert customer is not None and identity is not None
    assert (customer.display_name, customer.language) == ("Ada Lovelace", "fr")
    assert identity.customer_id == customer.id
    # Everything else is the table's defaults, which must be a new Customer's.
    fresh = Customer(display_name="Ada Lovelace", language="fr")
    skip = ("id", "created_at", "events", "identities")
    rest = [f.name for f in fields(Customer) if f.name not in skip]
    assert {n: getattr(customer, n) for n in rest} == {n: getattr(fresh, n) for n in rest}
    assert identity.reachable is True
    assert (identity.channel, identity.external_id, identity.chat_id) == (
        Channel.SLACK,
        "U1",
        "D1",
    )


async def test_open_ticket_writes_ticket_message_and_outbox_in_one_commit(db: Database) -> None:
    customer_id, identity_id = await new_customer(db)
    ticket_id = await new_ticket(
        db, customer_id, identity_id=identity_id, channel=Channel.TELEGRAM, priority="urgent"
    )
    async with db.uow() as uow:
        ticket = await services.get_ticket(uow, ticket_id)
        assert ticket.reference == f"CR-{1000 + ticket_id}"
        assert ticket.status == Status.NEW
        assert ticket.priority == Priority.URGENT
        assert ticket.subject == "My card was charged twice"
        assert ticket.first_response_due == ticket.created_at + timedelta(hours=1)
        timeline = await uow.tickets.timeline(ticket_id)
    assert [type(e).__name__ for e in timeline] == ["Message"]
    assert await outbox_events(db) == [("TicketOpened", {"ticket_id": ticket_id})]


async def test_references_are_sequential(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    a = await new_ticket(db, customer_id)
    b = await new_ticket(db, customer_id)
    assert b == a + 1


async def test_nothing_is_written_when_the_unit_of_work_is_not_committed(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    async with db.uow() as uow:
        await services.open_ticket(uow, customer_id=customer_id, description="x", category="y")
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(t.tickets))).scalar() == 0
    assert await outbox_events(db) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"description": "   "}, "needs a description"),
        ({"category": " "}, "needs a category"),
        ({"description": "x" * 20_001}, "longer than"),
    ],
)
async def test_open_ticket_rejects_bad_input(db: Database, kwargs: dict, message: str) -> None:
    customer_id, _ = await new_customer(db)
    with pytest.raises(InvalidInput, match=message):
        await new_ticket(db, customer_id, **kwargs)


async def test_open_ticket_for_unknown_customer_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        await new_ticket(db, 999)


async def test_assign_then_reply_then_resolve_records_the_timeline(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    agent_id = await new_agent(db)
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket_id, agent_id, actor="admin:root")
        await uow.commit()
    async with db.uow() as uow:
        await services.add_agent_reply(
            uow, ticket_id, agent_id, "Refund on its way", external_id="1.1"
        )
        await services.resolve_ticket(uow, ticket_id, actor=f"agent:{agent_id}")
        await uow.commit()
    async with db.uow() as uow:
        ticket = await services.get_ticket(uow, ticket_id)
        assert ticket.status == Status.RESOLVED
        assert ticket.assignee_id == agent_id
        assert ticket.first_response_at is not None
        assert ticket.resolved_at is not None
        kinds = [
            e.author.value if isinstance(e, Message) else e.kind
            for e in await uow.tickets.timeline(ticket_id)
        ]
    assert kinds == ["customer", "assigned", "agent", "status_changed"]
    names = [name for name, _ in await outbox_events(db)]
    assert names == ["TicketOpened", "TicketAssigned", "AgentReplied", "TicketStatusChanged"]


async def test_first_agent_reply_claims_an_unassigned_ticket(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    agent_id = await new_agent(db)
    async with db.uow() as uow:
        await services.add_agent_reply(uow, ticket_id, agent_id, "On it")
        await uow.commit()
    async with db.uow() as uow:
        ticket = await services.get_ticket(uow, ticket_id)
    assert (ticket.assignee_id, ticket.status) == (agent_id, Status.OPEN)


async def test_redelivered_platform_message_is_a_no_op(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    for _ in range(3):
        async with db.uow() as uow:
            await services.add_customer_message(
                uow, ticket_id, "any news?", channel=Channel.TELEGRAM, external_id="77"
            )
            await uow.commit()
    async with db.uow() as uow:
        timeline = await uow.tickets.timeline(ticket_id)
    assert sum(1 for e in timeline if isinstance(e, Message)) == 2
    assert [n for n, _ in await outbox_events(db)].count("CustomerWrote") == 1


async def test_customer_reply_moves_waiting_ticket_back_to_agent(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    agent_id = await new_agent(db)
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket_id, agent_id)
        await services.change_status(uow, ticket_id, Status.WAITING)
        await services.add_customer_message(uow, ticket_id, "here it is", channel=Channel.WEBCHAT)
        await uow.commit()
        assert (await services.get_ticket(uow, ticket_id)).status == Status.OPEN


async def test_resolved_ticket_reopens_when_customer_writes(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    agent_id = await new_agent(db)
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket_id, agent_id)
        await services.resolve_ticket(uow, ticket_id)
        await services.add_customer_message(uow, ticket_id, "still broken", channel=Channel.SLACK)
        await uow.commit()
    async with db.uow() as uow:
        ticket = await services.get_ticket(uow, ticket_id)
    assert ticket.status == Status.OPEN
    assert ticket.resolved_at is None


async def test_resolved_long_ago_does_not_reopen(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    async with db.uow() as uow:
        await services.resolve_ticket(uow, ticket_id, now=utcnow() - timedelta(days=30))
        await uow.commit()
    async with db.uow() as uow:
        with pytest.raises(InvalidInput, match="too long ago"):
            await services.add_customer_message(uow, ticket_id, "hello", channel=Channel.SLACK)


async def test_closed_ticket_refuses_messages_and_moves(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    agent_id = await new_agent(db)
    async with db.uow() as uow:
        await services.close_ticket(uow, ticket_id, reason="duplicate")
        await uow.commit()
    async with db.uow() as uow:
        with pytest.raises(InvalidInput, match="closed"):
            await services.add_customer_message(uow, ticket_id, "hi", channel=Channel.SLACK)
        with pytest.raises(InvalidInput, match="closed"):
            await services.add_agent_reply(uow, ticket_id, agent_id, "hi")
        with pytest.raises(IllegalTransition):
            await services.change_status(uow, ticket_id, Status.RESOLVED)
        with pytest.raises(InvalidInput, match="reopen"):
            await services.assign_ticket(uow, ticket_id, agent_id)


async def test_reopen_only_from_resolved(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    async with db.uow() as uow:
        with pytest.raises(InvalidInput, match="only a resolved ticket"):
            await services.reopen_ticket(uow, ticket_id)
        await services.resolve_ticket(uow, ticket_id)
        await services.reopen_ticket(uow, ticket_id)
        assert (await services.get_ticket(uow, ticket_id)).status == Status.NEW


async def test_open_needs_an_assignee(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    async with db.uow() as uow:
        with pytest.raises(InvalidInput, match="needs an assignee"):
            await services.change_status(uow, ticket_id, Status.OPEN)


async def test_assign_checks_active_and_capacity_unless_forced(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    first = await new_ticket(db, customer_id)
    second = await new_ticket(db, customer_id)
    agent_id = await new_agent(db, capacity=1)
    async with db.uow() as uow:
        await services.assign_ticket(uow, first, agent_id)
        with pytest.raises(CapacityExceeded, match="capacity 1"):
            await services.assign_ticket(uow, second, agent_id)
        await services.assign_ticket(uow, second, agent_id, force=True)
        await uow.commit()
    lazy = await new_agent(db, "Linus")
    async with db.uow() as uow:
        await services.deactivate_agent(uow, lazy)
        await uow.commit()
    async with db.uow() as uow:
        with pytest.raises(AgentUnavailable):
            await services.assign_ticket(uow, first, lazy)
        with pytest.raises(NotFound):
            await services.assign_ticket(uow, first, 999)


async def test_reassign_records_previous_agent_and_unassign_returns_to_queue(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    a, b = await new_agent(db, "Ann"), await new_agent(db, "Bob")
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket_id, a)
        await services.assign_ticket(uow, ticket_id, b)
        await services.unassign_ticket(uow, ticket_id)
        await uow.commit()
        ticket = await services.get_ticket(uow, ticket_id)
        with pytest.raises(InvalidInput, match="not assigned"):
            await services.unassign_ticket(uow, ticket_id)
    assert (ticket.assignee_id, ticket.status) == (None, Status.NEW)
    assigned = [p for n, p in await outbox_events(db) if n == "TicketAssigned"]
    assert assigned[1] == {"ticket_id": ticket_id, "agent_id": b, "previous_agent_id": a}
    assert ("TicketUnassigned", {"ticket_id": ticket_id, "previous_agent_id": b}) in (
        await outbox_events(db)
    )


async def test_auto_assign_oldest_first_to_least_loaded_skilled_agent(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    now = utcnow()
    old_billing = await new_ticket(db, customer_id, now=now - timedelta(hours=3))
    telecom = await new_ticket(db, customer_id, category="telecom", now=now - timedelta(hours=2))
    new_billing = await new_ticket(db, customer_id, now=now - timedelta(hours=1))
    orphan = await new_ticket(db, customer_id, category="social", now=now)
    ann = await new_agent(db, "Ann", skills=["billing"], capacity=1)
    bob = await new_agent(db, "Bob", skills=["billing", "telecom"], capacity=5)
    await new_agent(db, "Cyd", skills=["social"], availability=Availability.AWAY)
    async with db.uow() as uow:
        done = await services.auto_assign(uow)
        await uow.commit()
    pairs = {ticket.id: agent.id for ticket, agent in done}
    # Tie on load 0 goes to the agent with more headroom (Bob); Ann then has the least load.
    assert pairs == {old_billing: bob, telecom: bob, new_billing: ann}
    assert orphan not in pairs


async def test_rating_needs_a_resolved_ticket_and_a_score_from_1_to_5(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    async with db.uow() as uow:
        with pytest.raises(InvalidInput, match="once it is resolved"):
            await services.rate_ticket(uow, ticket_id, 5)
        await services.resolve_ticket(uow, ticket_id)
        for bad in (0, 6):
            with pytest.raises(InvalidInput, match="1 to 5"):
                await services.rate_ticket(uow, ticket_id, bad)
        await services.rate_ticket(uow, ticket_id, 4, " quick, thanks ")
        await uow.commit()
        ticket = await services.get_ticket(uow, ticket_id)
    assert (ticket.csat_score, ticket.csat_comment) == (4, "quick, thanks")


async def test_auto_close_closes_only_tickets_resolved_long_enough_ago(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    old = await new_ticket(db, customer_id)
    recent = await new_ticket(db, customer_id)
    now = utcnow()
    async with db.uow() as uow:
        await services.resolve_ticket(uow, old, now=now - timedelta(days=8))
        await services.resolve_ticket(uow, recent, now=now - timedelta(days=1))
        await uow.commit()
    async with db.uow() as uow:
        closed = await services.auto_close_resolved(uow, after=timedelta(days=7))
        await uow.commit()
    assert [t.id for t in closed] == [old]


async def test_sla_breaches_name_the_missed_target(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    now = utcnow()
    late = await new_ticket(db, customer_id, priority="urgent", now=now - timedelta(hours=2))
    await new_ticket(db, customer_id, priority="low", now=now - timedelta(hours=2))
    answered = await new_ticket(db, customer_id, priority="urgent", now=now - timedelta(hours=5))
    agent_id = await new_agent(db)
    async with db.uow() as uow:
        await services.add_agent_reply(
            uow, answered, agent_id, "hi", now=now - timedelta(hours=4.5)
        )
        await uow.commit()
    async with db.uow() as uow:
        breaches = await services.find_sla_breaches(uow, now=now)
    assert {(b.ticket.id, b.kind) for b in breaches} == {
        (late, "first_response"),
        (answered, "resolution"),
    }


async def test_change_priority_restamps_sla(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id, priority="low")
    async with db.uow() as uow:
        ticket = await services.change_priority(uow, ticket_id, Priority.URGENT)
        await uow.commit()
    assert ticket.first_response_due == ticket.created_at + timedelta(hours=1)


async def test_request_human_reports_queue_position(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    now = utcnow()
    first = await new_ticket(db, customer_id, now=now - timedelta(minutes=2))
    second = await new_ticket(db, customer_id, now=now - timedelta(minutes=1))
    async with db.uow() as uow:
        assert await services.request_human(uow, second) == 2
        assert await services.request_human(uow, first) == 1
        await uow.commit()
    assert [n for n, _ in await outbox_events(db)].count("HumanRequested") == 2


async def test_internal_note_is_recorded_as_note(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    async with db.uow() as uow:
        note = await services.add_internal_note(uow, ticket_id, "VIP customer")
        await uow.commit()
    assert note.author == Author.NOTE
    assert ("NoteAdded", {"ticket_id": ticket_id, "message_id": note.id}) in (
        await outbox_events(db)
    )


async def test_deactivating_an_agent_with_open_tickets_needs_reassignment(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    ann, bob = await new_agent(db, "Ann"), await new_agent(db, "Bob")
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket_id, ann)
        await uow.commit()
    async with db.uow() as uow:
        with pytest.raises(InvalidInput, match="reassign them first"):
            await services.deactivate_agent(uow, ann)
        agent = await services.deactivate_agent(uow, ann, reassign_to=bob)
        await uow.commit()
        assert not agent.active
        assert (await services.get_ticket(uow, ticket_id)).assignee_id == bob


async def test_duplicate_agent_email_is_refused(db: Database) -> None:
    await new_agent(db, "Ann")
    with pytest.raises(InvalidInput, match="already exists"):
        await new_agent(db, "Ann")


async def test_export_and_erase_customer_data(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id, description="my address is 1 Main St")
    async with db.uow() as uow:
        exported = await services.export_customer_data(uow, customer_id)
    assert exported["customer"]["display_name"] == "Ada Lovelace"
    assert exported["tickets"][0]["messages"][0]["body"] == "my address is 1 Main St"
    async with db.uow() as uow:
        await services.erase_customer(uow, customer_id)
        await uow.commit()
    async with db.uow() as uow:
        customer = await services.get_customer(uow, customer_id)
        ticket = await services.get_ticket(uow, ticket_id)
        bodies = [e.body for e in await uow.tickets.timeline(ticket_id) if isinstance(e, Message)]
        identity = await uow.customers.identity(Channel.TELEGRAM, "u1")
    assert customer.display_name == "erased"
    assert customer.erased_at is not None
    assert (ticket.description, ticket.status, ticket.category) == (
        "(erased)",
        Status.CLOSED,
        "billing",
    )
    assert bodies == ["(erased)"]
    assert identity is None


async def test_concurrent_updates_of_one_ticket_never_lose_a_write(db: Database) -> None:
    customer_id, _ = await new_customer(db)
    ticket_id = await new_ticket(db, customer_id)
    agents = [await new_agent(db, f"A{i}") for i in range(4)]

    async def assign(agent_id: int) -> str:
        for _ in range(20):
            try:
                async with db.uow() as uow:
                    await services.assign_ticket(uow, ticket_id, agent_id)
                    await uow.commit()
                return "ok"
            except Conflict:
                await asyncio.sleep(0.01)
        return "gave up"

    results = await asyncio.gather(*(assign(a) for a in agents))
    assert results == ["ok"] * 4
    async with db.uow() as uow:
        ticket = await services.get_ticket(uow, ticket_id)
    assigned = [p for n, p in await outbox_events(db) if n == "TicketAssigned"]
    assert len(assigned) == 4
    assert ticket.assignee_id == assigned[-1]["agent_id"]
    assert ticket.version == 5
