"""Customers (profile, tickets, export, erasure) and dead letters (list, retry)."""

from __future__ import annotations

from sqlalchemy import insert, select

from core.db import tables as t
from core.model import utcnow
from tests.admin_api.conftest import Api, assert_problem, outbox_events


async def test_a_customer_with_their_tickets(api: Api) -> None:
    ada = await api.customer("Ada Lovelace")
    first = await api.ticket(ada, "Card charged twice")
    await api.ticket()  # someone else's
    profile = (await api.get(f"/customers/{ada}")).json()
    assert profile["display_name"] == "Ada Lovelace"
    assert [i["channel"] for i in profile["identities"]] == ["telegram"]
    tickets = (await api.get(f"/customers/{ada}/tickets")).json()
    assert [t["id"] for t in tickets["items"]] == [first]
    assert_problem(await api.get("/customers/999"), 404)
    assert_problem(await api.get("/customers/999/tickets"), 404)


async def test_the_export_holds_the_conversation_but_not_internal_notes(api: Api) -> None:
    grace = await api.agent("Grace")
    ada = await api.customer("Ada Lovelace")
    ticket = await api.ticket(ada, "Card charged twice")
    await api.post(f"/tickets/{ticket}/notes", json={"body": "suspected fraud"})
    await api.post(f"/tickets/{ticket}/replies", json={"body": "Refunded", "agent_id": grace})
    export = await api.get(f"/customers/{ada}/export")
    assert export.status_code == 200
    data = export.json()
    assert data["customer"]["display_name"] == "Ada Lovelace"
    bodies = [m["body"] for m in data["tickets"][0]["messages"]]
    assert bodies == ["Card charged twice", "Refunded"]
    assert "suspected fraud" not in export.text


async def test_erasure_removes_personal_data_and_tells_the_outbox(api: Api) -> None:
    ada = await api.customer("Ada Lovelace")
    ticket = await api.ticket(ada, "My address is 12 Baker Street")
    erased = await api.post(f"/customers/{ada}/erase")
    assert erased.status_code == 200
    assert erased.json()["display_name"] == "erased" and erased.json()["erased_at"]
    detail = (await api.get(f"/tickets/{ticket}")).json()
    assert "Baker" not in str(detail) and detail["status"] == "closed"
    erasure = ("CustomerErased", {"customer_id": ada, "file_ids": []})
    assert erasure in await outbox_events(api.db)
    assert_problem(await api.post("/customers/999/erase"), 404)


async def _delivery(api: Api, status: str, handler: str = "slack.open_thread") -> int:
    async with api.db.uow() as uow:
        event_id = await uow.session.scalar(select(t.outbox.c.id).limit(1))
        await uow.session.execute(
            t.outbox.update().where(t.outbox.c.id == event_id).values(status="dead")
        )
        delivery_id = await uow.session.scalar(
            insert(t.outbox_deliveries)
            .values(event_id=event_id, handler=handler, status=status, attempts=12,
                    last_error="HTTP 400 channel_not_found", updated_at=utcnow())
            .returning(t.outbox_deliveries.c.id)
        )  # fmt: skip
        await uow.session.commit()
    assert delivery_id is not None
    return int(delivery_id)


async def test_dead_letters_are_listed_newest_first_with_their_reason(api: Api) -> None:
    ticket = await api.ticket()
    await _delivery(api, "done", "email.notice")
    older = await _delivery(api, "dead", "slack.open_thread")
    newer = await _delivery(api, "dead", "telegram.notice")
    page = (await api.get("/dead-letters", params={"limit": 1})).json()
    assert [d["id"] for d in page["items"]] == [newer]
    item = page["items"][0]
    assert item["event_type"] == "TicketOpened" and item["ticket_id"] == ticket
    assert item["last_error"] == "HTTP 400 channel_not_found"
    rest = (await api.get("/dead-letters", params={"cursor": page["next_cursor"]})).json()
    assert [d["id"] for d in rest["items"]] == [older] and rest["next_cursor"] is None


async def test_retrying_a_dead_letter_hands_it_back_to_the_relay(api: Api) -> None:
    await api.ticket()
    dead = await _delivery(api, "dead")
    before = utcnow()
    response = await api.post(f"/dead-letters/{dead}/retry")
    assert response.status_code == 202
    async with api.db.engine.connect() as conn:
        d = (await conn.execute(select(t.outbox_deliveries).where(
            t.outbox_deliveries.c.id == dead))).one()  # fmt: skip
        o = (await conn.execute(select(t.outbox).where(t.outbox.c.id == d.event_id))).one()
    assert d.status == "failed" and d.next_attempt_at >= before and d.attempts == 0
    assert o.status == "pending" and o.available_at >= before and o.locked_by is None
    assert (await api.get("/dead-letters")).json()["items"] == []
    assert_problem(await api.post(f"/dead-letters/{dead}/retry"), 409, "conflict")
    assert_problem(await api.post("/dead-letters/999/retry"), 404)
