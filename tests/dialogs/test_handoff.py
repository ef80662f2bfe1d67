"""Handing the customer to a person: one notice, in order, in the customer's own words; texts
that match how the customer chose to hear from us; buttons that act once, and only while open.

The relay runs with the real customer notices and a collecting chat channel, so a test sees
everything the customer would read in chat, not only the turn's answer.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bots.email import LocalMailbox
from bots.notices import CustomerNotices
from bots.relay import Handlers, Relay
from core import services
from core.db import tables as t
from core.db.database import Database
from core.model import Channel, Message
from dialogs.engine import DialogEngine
from tests.dialogs.conftest import (
    Customer,
    Press,
    file_complaint_steps,
    new_agent,
    only_ticket,
    verify_dialog,
)
from tests.relay.support import CollectingChannel, drain


def relay_to_chat(db: Database, tmp_path: Path) -> tuple[Relay, CollectingChannel]:
    chat = CollectingChannel()
    mailbox = LocalMailbox(tmp_path / "mailbox", sender="support@careline.test")
    handlers = Handlers()
    CustomerNotices(db, channels={Channel.TELEGRAM: chat}, email=mailbox).register(handlers)
    return Relay(db, handlers), chat


async def auto_assign(db: Database) -> None:
    """What the relay's housekeeping does when a ticket enters the queue."""
    async with db.uow() as uow:
        await services.auto_assign(uow)
        await uow.commit()


async def outbox_events(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(select(t.outbox.c.event_type))).scalars().all())


async def ticket_messages(db: Database, ticket_id: int) -> list[tuple[str, str]]:
    async with db.uow() as uow:
        timeline = await uow.tickets.timeline(ticket_id)
    return [(m.author.value, m.body) for m in timeline if isinstance(m, Message)]


# --- 1 and 2: one handoff notice, in order, with no invented words --------------------------


async def test_talk_to_a_person_without_a_ticket_reads_as_one_notice_then_the_agents_name(
    db: Database, engine: DialogEngine, tmp_path: Path
) -> None:
    relay, chat = relay_to_chat(db, tmp_path)
    await new_agent(db, "Bob Lee")
    customer = await verify_dialog(
        engine,
        [
            ("/start", "Talk to a person"),
            (Press("/human", "Talk to a person"), ["CR-1001", "number 1 in the queue"]),
        ],
    )
    assert len(customer.last) == 1
    await auto_assign(db)
    await drain(relay)

    # After the turn's own notice, the customer reads only who picked the ticket up.
    later = chat.texts("chat-u1")
    assert len(later) == 1, later
    assert "Bob Lee" in later[0] and "CR-1001" in later[0]
    assert "queue" not in later[0] and "already on" not in later[0]


async def test_a_ticket_opened_for_a_person_holds_no_words_the_customer_did_not_write(
    db: Database, engine: DialogEngine
) -> None:
    await verify_dialog(
        engine, [("/start", "Hi"), (Press("/human", "Talk to a person"), "CR-1001")]
    )
    messages = await ticket_messages(db, await only_ticket(db))
    assert [author for author, _ in messages if author == "customer"] == []
    assert not any("asked to talk to a person" in body for _, body in messages)
    assert any(author == "note" and "asked for a person" in body for author, body in messages)


async def test_a_ticket_opened_for_a_person_is_described_by_the_customers_own_words(
    db: Database, engine: DialogEngine
) -> None:
    await verify_dialog(
        engine,
        [
            ("my card was charged twice", "didn't understand"),
            ("I need a person", "CR-1001"),
        ],
    )
    messages = await ticket_messages(db, await only_ticket(db))
    customer_said = [body for author, body in messages if author == "customer"]
    assert customer_said == ["my card was charged twice\nI need a person"]


async def test_asking_for_a_person_on_an_open_ticket_is_answered_once_in_chat(
    db: Database, engine: DialogEngine, tmp_path: Path
) -> None:
    relay, chat = relay_to_chat(db, tmp_path)
    customer = await verify_dialog(engine, file_complaint_steps())
    await drain(relay)
    await verify_dialog(customer, [("/human", ["CR-1001", "number 1 in the queue"])])
    assert len(customer.last) == 1
    await drain(relay)

    assert chat.texts("chat-u1") == []  # the turn's answer was the notice
    assert "HumanRequested" not in await outbox_events(db)
    await verify_dialog(customer, [("/human", "already in line for a person on CR-1001")])


# --- 9: the texts follow the customer's choice of chat, email or both -----------------------


async def choose_updates(db: Database, engine: DialogEngine, user_id: str, press: str) -> Customer:
    customer = await verify_dialog(
        engine,
        [
            ("/new", "describe"),
            ("Charged twice for March", "area"),
            ("billing", "urgent"),
            ("normal", "email"),
            (f"{user_id}@example.com", "sent a 6-digit code"),
        ],
        user_id=user_id,
    )
    async with db.engine.connect() as conn:
        v = t.email_verifications.c
        query = select(v.code).where(v.email == f"{user_id}@example.com")
        code = (await conn.execute(query)).scalar_one()
    await verify_dialog(customer, [(code, "keep you posted")])
    await customer.say(Press(press))
    return customer


async def test_updates_by_email_are_promised_by_email(db: Database, engine: DialogEngine) -> None:
    customer = await choose_updates(db, engine, "ada", "notify:email")
    summary = customer.last[0].text
    assert "Updates go to ada@example.com." in summary and "also" not in summary
    await verify_dialog(customer, [(Press("confirm"), "reply by email to ada@example.com")])
    assert "right here" not in customer.last[0].text


async def test_updates_in_chat_only_are_promised_here(db: Database, engine: DialogEngine) -> None:
    customer = await choose_updates(db, engine, "bea", "notify:chat")
    summary = customer.last[0].text
    assert "Updates come here in the chat." in summary and "bea@example.com" not in summary
    await verify_dialog(customer, [(Press("confirm"), "reply right here")])
    assert "bea@example.com" not in customer.last[0].text


async def test_updates_both_ways_are_promised_both_ways(db: Database, engine: DialogEngine) -> None:
    customer = await choose_updates(db, engine, "cy", "notify:both")
    assert "Updates come here, and also go to cy@example.com." in customer.last[0].text
    await verify_dialog(customer, [(Press("confirm"), "reply here and by email to cy@example.com")])


# --- 10: a button acts once, and only while it is offered -----------------------------------


async def test_a_double_click_on_open_it_opens_one_ticket_and_adds_nothing(
    db: Database, engine: DialogEngine
) -> None:
    steps = file_complaint_steps()
    customer = await verify_dialog(engine, steps[:-1])
    yes = Press("confirm", "Yes, open it")
    await verify_dialog(customer, [(yes, "CR-1001"), (yes, "earlier message")])
    assert "Added to" not in customer.last[0].text
    ticket_id = await only_ticket(db)
    assert [a for a, _ in await ticket_messages(db, ticket_id)] == ["customer"]


async def test_an_old_button_does_not_act_on_the_current_step(
    db: Database, engine: DialogEngine
) -> None:
    await verify_dialog(
        engine,
        [
            ("I want to complain", "describe the problem"),
            ("My internet has been down since Monday", "which area"),
            (Press("cat:telecom", "Telecom"), "how urgent"),
            (Press("cat:billing", "Billing"), ["earlier message", "Urgent"]),  # still offered
            (Press("prio:high", "High"), "email"),
            (Press("skip", "Skip"), "Telecom"),  # the first choice stood
        ],
    )


async def test_an_old_menu_button_during_a_handoff_is_not_added_to_the_ticket(
    db: Database, engine: DialogEngine
) -> None:
    customer = await verify_dialog(engine, [("hello", "Talk to a person")])
    await verify_dialog(customer, [("I need a person", "CR-1001")])
    await verify_dialog(customer, [(Press("/new", "Report a problem"), "earlier message")])
    customer_said = [b for a, b in await ticket_messages(db, 1) if a == "customer"]
    assert "Report a problem" not in "\n".join(customer_said)
