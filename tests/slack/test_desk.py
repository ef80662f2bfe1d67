"""Outbound: the relay keeps each ticket's Slack thread in step with the ticket."""

from __future__ import annotations

from sqlalchemy import update

from core import events, services
from core.db import tables as t
from core.lifecycle import Status
from core.model import Priority, utcnow
from tests.slack.conftest import BILLING, DESK, Desk


async def test_new_ticket_opens_a_thread_in_its_category_channel(desk: Desk) -> None:
    ticket = await desk.open_ticket(category="billing")
    other = await desk.open_ticket(category="technical", text="The app crashes")
    await desk.drain()

    [root] = desk.fake.posted(BILLING)
    [elsewhere] = desk.fake.posted(DESK)
    assert ticket.reference in root["text"] and other.reference in elsewhere["text"]
    shown = str(root["blocks"])
    for expected in (ticket.reference, "Charged twice", "Maria", "billing", "normal", "new"):
        assert expected in shown
    assert "maria@example.test" not in shown  # the customer's display name only
    assert "receipt.jpg" in shown
    action_ids = {
        e["action_id"] for b in root["blocks"] if b["type"] == "actions" for e in b["elements"]
    }
    assert action_ids == {
        "ticket_claim",
        "ticket_assign",
        "ticket_priority",
        "ticket_resolve",
        "ticket_close",
    }
    assert ticket.id is not None
    assert (BILLING, await desk.thread_ts(ticket.id)) in desk.fake.messages
    desk.fake.assert_no_violations()


async def test_the_thread_names_the_customers_language(desk: Desk) -> None:
    """Agents see at once who can answer: the language of the customer, by name."""
    ticket = await desk.open_ticket(language="es-MX")
    await desk.drain()
    assert ticket.language == "es"
    [root] = desk.fake.posted(BILLING)
    fields = [f["text"] for b in root["blocks"] if b["type"] == "section" for f in b["fields"]]
    assert "*Language*\nSpanish (es)" in fields
    desk.fake.assert_no_violations()


async def test_thread_is_stored_under_team_channel_and_ts(desk: Desk) -> None:
    ticket = await desk.open_ticket()
    await desk.drain()
    assert ticket.id is not None
    ts = await desk.thread_ts(ticket.id)
    assert (BILLING, ts) in desk.fake.messages
    async with desk.db.uow() as uow:
        assert await uow.threads.ticket_of("T0CARELINE", BILLING, ts) == ticket.id
        assert await uow.threads.ticket_of("T0OTHER", BILLING, ts) is None


async def test_opening_the_same_thread_twice_posts_once(desk: Desk) -> None:
    ticket = await desk.open_ticket()
    assert ticket.id is not None
    delivery = desk.delivery(events.TicketOpened(ticket.id), "slack.open_thread")
    first = await desk.slack.desk.open_thread(delivery)
    again = await desk.slack.desk.open_thread(delivery)
    assert first == again
    assert len(desk.fake.posted()) == 1


async def test_customer_message_is_mirrored_into_the_thread(desk: Desk) -> None:
    ticket = await desk.open_ticket()
    await desk.drain()
    assert ticket.id is not None
    async with desk.db.uow() as uow:
        await services.add_customer_message(
            uow,
            ticket.id,
            "Here is the <statement>",
            channel=ticket.channel,
            attachments=[{"kind": "document", "name": "statement.pdf", "size": 5000}],
        )
        await uow.commit()
    await desk.drain()
    thread_ts = await desk.thread_ts(ticket.id)
    [mirrored] = [p for p in desk.fake.posted(BILLING) if p.get("thread_ts") == thread_ts]
    assert "Maria" in mirrored["text"] and "&lt;statement&gt;" in mirrored["text"]
    assert "statement.pdf" in mirrored["text"]
    desk.fake.assert_no_violations()


async def test_changes_update_the_root_in_place_and_are_noted_in_the_thread(desk: Desk) -> None:
    ticket = await desk.open_ticket()
    agent = await desk.add_agent()
    await desk.drain()
    assert ticket.id is not None and agent.id is not None
    async with desk.db.uow() as uow:
        await services.assign_ticket(uow, ticket.id, agent.id)
        await services.change_priority(uow, ticket.id, Priority.URGENT)
        await services.resolve_ticket(uow, ticket.id)
        await uow.commit()
    await desk.drain()

    thread_ts = await desk.thread_ts(ticket.id)
    updates = desk.fake.calls_to("chat.update")
    assert len(updates) >= 3 and all(u.params["ts"] == thread_ts for u in updates)
    root = desk.fake.messages[(BILLING, thread_ts)]
    assert "resolved" in str(root["blocks"]) and "urgent" in str(root["blocks"])
    assert "ticket_reopen" in str(root["blocks"]) and "ticket_claim" not in str(root["blocks"])
    notes = " ".join(p["text"] for p in desk.fake.posted(BILLING) if p.get("thread_ts"))
    assert "Assigned to <@U0AGENT01>" in notes
    assert "Priority: normal → *urgent*" in notes
    assert "→ *resolved*" in notes
    desk.fake.assert_no_violations()


async def test_sla_breach_is_announced_mentioning_the_assignee(desk: Desk) -> None:
    ticket = await desk.open_ticket()
    agent = await desk.add_agent()
    assert ticket.id is not None and agent.id is not None
    async with desk.db.uow() as uow:
        await services.assign_ticket(uow, ticket.id, agent.id)
        await uow.commit()
    await desk.drain()
    delivery = desk.delivery(events.SlaBreached(ticket.id, "first_response"), "slack.sla", 999)
    await desk.slack.desk.announce_sla_breach(delivery)
    [breach] = [p for p in desk.fake.posted(BILLING) if "SLA breached" in p["text"]]
    assert "<@U0AGENT01>" in breach["text"] and "first response" in breach["text"]
    assert breach["thread_ts"] == await desk.thread_ts(ticket.id)


async def test_handlers_wait_for_the_thread_and_skip_without_a_desk_channel(desk: Desk) -> None:
    from bots.channels import RetryLater
    from bots.relay import Skip

    ticket = await desk.open_ticket()
    assert ticket.id is not None
    change = desk.delivery(events.TicketPriorityChanged(ticket.id, "normal", "high"), "slack.x")
    try:
        await desk.slack.desk.note_change(change)
        raise AssertionError("expected RetryLater before the thread exists")
    except RetryLater:
        pass
    desk.slack.desk.routing.clear()
    desk.slack.desk.default_channel = None
    try:
        await desk.slack.desk.note_change(change)
        raise AssertionError("expected Skip without any desk channel")
    except Skip:
        pass


async def _agent_reply(desk: Desk, external: bool = True) -> tuple[int, int, str | None]:
    ticket = await desk.open_ticket()
    agent = await desk.add_agent()
    await desk.drain()
    assert ticket.id is not None and agent.id is not None
    thread_ts = await desk.thread_ts(ticket.id)
    typed = desk.fake.add_message(BILLING, "We refunded you", thread_ts=thread_ts)
    external_id = f"{BILLING}:{typed['ts']}" if external else None
    async with desk.db.uow() as uow:
        message = await services.add_agent_reply(
            uow, ticket.id, agent.id, "We refunded you", external_id=external_id
        )
        await uow.commit()
    assert message.id is not None
    return ticket.id, message.id, typed["ts"]


async def drain_until_settled(desk: Desk, relay: object) -> None:
    """Drain, making retries due at once (the confirmation waits for the delivery)."""
    from bots.relay import Relay

    assert isinstance(relay, Relay)
    for _ in range(5):
        await relay.drain_once()
        async with desk.db.engine.begin() as conn:
            await conn.execute(
                update(t.outbox).where(t.outbox.c.status == "pending").values(available_at=utcnow())
            )
            await conn.execute(update(t.outbox_deliveries).values(next_attempt_at=utcnow()))


async def test_delivered_agent_reply_gets_a_reaction(desk: Desk) -> None:
    from bots.relay import Handlers, Relay

    ticket_id, _, ts = await _agent_reply(desk)
    delivered: list[int] = []

    async def deliver(delivery):
        delivered.append(delivery.event_id)
        return "tg-1"

    handlers = Handlers()
    desk.slack.desk.register(handlers)
    handlers.add(events.AgentReplied, "customer.deliver", deliver)
    relay = Relay(desk.db, handlers, worker="r2")
    await drain_until_settled(desk, relay)
    assert delivered
    reactions = desk.fake.calls_to("reactions.add")
    assert reactions, "no reaction"
    assert reactions[-1].params == {**reactions[-1].params, "channel": BILLING, "timestamp": ts}
    assert reactions[-1].params["name"] == "white_check_mark"
    assert ticket_id


async def test_failed_agent_reply_is_reported_in_the_thread(desk: Desk) -> None:
    from bots.channels import PermanentFailure
    from bots.relay import Handlers, Relay

    ticket_id, _, ts = await _agent_reply(desk)

    async def deliver(delivery):
        raise PermanentFailure("Telegram: chat not found")

    handlers = Handlers()
    desk.slack.desk.register(handlers)
    handlers.add(events.AgentReplied, "customer.deliver", deliver)
    relay = Relay(desk.db, handlers, worker="r3")
    await drain_until_settled(desk, relay)
    thread_ts = await desk.thread_ts(ticket_id)
    [warning] = [
        p
        for p in desk.fake.posted(BILLING)
        if p.get("thread_ts") == thread_ts and "did not reach" in p["text"]
    ]
    assert "chat not found" in warning["text"]
    assert desk.fake.calls_to("reactions.add")[-1].params["name"] == "warning"
    assert ts is not None


async def test_root_shows_no_controls_once_closed(desk: Desk) -> None:
    ticket = await desk.open_ticket()
    await desk.drain()
    assert ticket.id is not None
    async with desk.db.uow() as uow:
        await services.close_ticket(uow, ticket.id)
        await uow.commit()
    await desk.drain()
    root = desk.fake.messages[(BILLING, await desk.thread_ts(ticket.id))]
    assert not [b for b in root["blocks"] if b["type"] == "actions"]
    assert Status.CLOSED.value in str(root["blocks"])
