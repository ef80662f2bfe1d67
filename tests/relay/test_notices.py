"""Customers hear about their tickets in chat, by email, or both, as they chose."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select

from bots.email import LocalMailbox
from bots.notices import CustomerNotices
from bots.relay import Handlers, Relay
from core import services
from core.db import tables as t
from core.db.database import Database
from core.events import EmailVerificationRequested
from core.lifecycle import Status
from core.model import Channel, Notify, utcnow
from tests.relay.support import (
    CollectingChannel,
    agent,
    customer_with_ticket,
    deliveries,
    drain,
)


class Mail:
    """Reads what the local mailbox wrote."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def messages(self, to: str | None = None) -> list[email.message.EmailMessage]:
        found = []
        for path in sorted(self.folder.glob("*.eml")) if self.folder.exists() else []:
            parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(parsed, email.message.EmailMessage)
            if to is None or parsed["To"] == to:
                found.append(parsed)
        return found

    def bodies(self, to: str) -> list[str]:
        out = []
        for m in self.messages(to):
            part = m.get_body(("plain",))
            assert part is not None
            out.append(part.get_content())
        return out


def wire(db: Database, tmp_path: Path) -> tuple[Relay, CollectingChannel, Mail]:
    chat = CollectingChannel()
    mailbox = LocalMailbox(tmp_path / "mailbox", sender="support@careline.test")
    handlers = Handlers()
    CustomerNotices(db, channels={Channel.TELEGRAM: chat}, email=mailbox).register(handlers)
    return Relay(db, handlers), chat, Mail(tmp_path / "mailbox")


async def test_ticket_opened_is_confirmed_by_email_with_reference_and_next_steps(
    db: Database, tmp_path: Path
) -> None:
    relay, chat, mail = wire(db, tmp_path)
    _, _ticket_id, chat_id = await customer_with_ticket(db, "mia", email="mia@example.org")
    await drain(relay)

    [body] = mail.bodies("mia@example.org")
    assert "CR-" in body and "What happens next" in body
    assert "mia's card was charged twice" in body  # the timeline shows the first message
    [message] = mail.messages("mia@example.org")
    assert message["Subject"].startswith("We have your request: CR-")
    assert message.get_body(("html",)) is not None
    assert chat.texts(chat_id) == []  # the dialog already answered in chat


async def test_assignment_tells_the_customer_the_agents_name_in_chat_and_by_email(
    db: Database, tmp_path: Path
) -> None:
    relay, chat, mail = wire(db, tmp_path)
    _, ticket_id, chat_id = await customer_with_ticket(db, "leo", email="leo@example.org")
    anna = await agent(db)
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket_id, anna)
        await uow.commit()
    await drain(relay)

    assert chat.texts(chat_id) == [
        f"Anna Berg from our team is now looking after CR-{ticket_id + 1000}."
    ]
    assert any("Anna Berg from our team" in b for b in mail.bodies("leo@example.org"))


async def test_customer_who_chose_chat_gets_no_email_and_email_choice_gets_no_chat(
    db: Database, tmp_path: Path
) -> None:
    relay, chat, mail = wire(db, tmp_path)
    _, chat_ticket, chat_only = await customer_with_ticket(
        db, "ana", email="ana@example.org", notify=Notify.CHAT
    )
    _, mail_ticket, mail_only = await customer_with_ticket(
        db, "bob", email="bob@example.org", notify=Notify.EMAIL
    )
    anna = await agent(db)
    async with db.uow() as uow:
        await services.assign_ticket(uow, chat_ticket, anna)
        await services.assign_ticket(uow, mail_ticket, anna)
        await uow.commit()
    await drain(relay)

    assert len(chat.texts(chat_only)) == 1
    assert mail.messages("ana@example.org") == []
    assert chat.texts(mail_only) == []
    assert len(mail.messages("bob@example.org")) == 2  # opened + assigned


async def test_unverified_or_bounced_addresses_get_no_mail(db: Database, tmp_path: Path) -> None:
    relay, _, mail = wire(db, tmp_path)
    await customer_with_ticket(db, "eve", email="eve@example.org", verified=False)
    customer_id, _, _ = await customer_with_ticket(db, "kim", email="kim@example.org")
    async with db.uow() as uow:
        customer = await uow.customers.get(customer_id)
        assert customer is not None
        customer.email_blocked = True
        await uow.commit()
    await drain(relay)

    assert mail.messages() == []
    reasons = {r["last_error"] for r in (await deliveries(db)).values()}
    assert "the customer has no verified, deliverable email address" in reasons


async def test_agent_reply_reaches_the_chat_under_the_agents_name_and_records_its_id(
    db: Database, tmp_path: Path
) -> None:
    relay, chat, _ = wire(db, tmp_path)
    _, ticket_id, chat_id = await customer_with_ticket(db, "ola", notify=Notify.CHAT)
    anna = await agent(db)
    async with db.uow() as uow:
        reply = await services.add_agent_reply(uow, ticket_id, anna, "Refund sent today.")
        await uow.commit()
    await drain(relay)

    texts = chat.texts(chat_id)
    assert "Anna Berg: Refund sent today." in texts
    async with db.engine.connect() as conn:
        delivered = (
            await conn.execute(select(t.messages.c.delivered_id).where(t.messages.c.id == reply.id))
        ).scalar_one()
    assert delivered == f"msg-{texts.index('Anna Berg: Refund sent today.') + 1}"


async def test_customer_who_blocked_the_bot_is_told_by_email_instead(
    db: Database, tmp_path: Path
) -> None:
    relay, chat, mail = wire(db, tmp_path)
    _, ticket_id, chat_id = await customer_with_ticket(
        db, "uma", email="uma@example.org", notify=Notify.CHAT
    )
    chat.blocked.add(chat_id)
    anna = await agent(db)
    async with db.uow() as uow:
        await services.add_agent_reply(uow, ticket_id, anna, "Could you send the receipt?")
        await uow.commit()
    await drain(relay)

    bodies = mail.bodies("uma@example.org")
    assert any("Could you send the receipt?" in b for b in bodies)
    assert any("Anna Berg from our team" in b for b in bodies)  # the assignment notice too
    async with db.engine.connect() as conn:
        reachable = (await conn.execute(select(t.channel_identities.c.reachable))).scalars().all()
    assert reachable == [False]


async def test_waiting_resolved_and_closed_notices_carry_what_the_customer_can_do(
    db: Database, tmp_path: Path
) -> None:
    relay, chat, _ = wire(db, tmp_path)
    _, ticket_id, _chat_id = await customer_with_ticket(db, "ivy", notify=Notify.CHAT)
    reference = f"CR-{ticket_id + 1000}"
    async with db.uow() as uow:
        await services.change_status(uow, ticket_id, Status.WAITING)
        await uow.commit()
    async with db.uow() as uow:
        await services.resolve_ticket(uow, ticket_id)
        await uow.commit()
    await drain(relay)
    async with db.uow() as uow:
        await services.auto_close_resolved(uow, after=timedelta(0), now=utcnow())
        await uow.commit()
    await drain(relay)

    waiting, resolved, closed = chat.sent
    assert "waiting for your answer" in waiting[1].text
    assert "How did we do?" in resolved[1].text
    assert [c.value for c in resolved[1].choices] == [f"rate:{reference}:{n}" for n in range(1, 6)]
    assert "did not hear back" in closed[1].text  # auto-closed


async def test_customer_asking_for_a_person_hears_their_place_and_expected_wait(
    db: Database, tmp_path: Path
) -> None:
    relay, chat, _ = wire(db, tmp_path)
    await customer_with_ticket(db, "first", notify=Notify.CHAT)
    _, ticket_id, chat_id = await customer_with_ticket(db, "second", notify=Notify.CHAT)
    async with db.uow() as uow:
        await services.request_human(uow, ticket_id)
        await uow.commit()
    await drain(relay)

    assert chat.texts(chat_id) == [
        f"You are number 2 in the queue for a person on CR-{ticket_id + 1000}. "
        "Expected wait: about 20 minutes. We will answer you here."
    ]


async def test_verification_code_is_mailed_to_the_address_being_verified(
    db: Database, tmp_path: Path
) -> None:
    relay, _, mail = wire(db, tmp_path)
    customer_id, _, _ = await customer_with_ticket(db, "zoe", notify=Notify.CHAT)
    now = utcnow()
    async with db.uow() as uow:
        result = await uow.session.execute(
            insert(t.email_verifications)
            .values(
                customer_id=customer_id,
                email="zoe@example.org",
                code="482913",
                created_at=now,
                expires_at=now + timedelta(minutes=15),
            )
            .returning(t.email_verifications.c.id)
        )
        verification_id = int(result.scalar_one())
        customer = await uow.customers.get(customer_id)
        assert customer is not None
        customer.record(EmailVerificationRequested(customer_id, verification_id))
        await uow.commit()
    await drain(relay)

    [body] = mail.bodies("zoe@example.org")
    assert "482913" in body and "expires in 15 minutes" in body


async def test_email_timeline_never_shows_internal_notes(db: Database, tmp_path: Path) -> None:
    relay, _, mail = wire(db, tmp_path)
    _, ticket_id, _ = await customer_with_ticket(db, "ray", email="ray@example.org")
    anna = await agent(db)
    async with db.uow() as uow:
        await services.add_internal_note(uow, ticket_id, "customer seems upset", agent_id=anna)
        await services.add_agent_reply(uow, ticket_id, anna, "We are on it.")
        await uow.commit()
    await drain(relay)

    bodies = mail.bodies("ray@example.org")
    assert any("We are on it." in b for b in bodies)
    assert not any("upset" in b for b in bodies)
    html = mail.messages("ray@example.org")[-1].get_body(("html",))
    assert html is not None and "upset" not in html.get_content()
