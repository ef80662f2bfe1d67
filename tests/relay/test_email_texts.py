"""Emails read right to the customer: one number per rating, no promise that replying by
email works unless a reply reaches the ticket (a reply domain is set), words not codes,
plurals that agree."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from bots.email import LocalMailbox
from bots.email.inbound import ReplyAddresses
from bots.notices import CustomerNotices
from bots.relay import Handlers, Relay
from core import services
from core.db import tables as t
from core.db.database import Database
from core.events import EmailVerificationRequested, SlaBreached
from core.lifecycle import Status
from core.model import Channel, Notify, utcnow
from tests.relay.support import CollectingChannel, agent, customer_with_ticket, drain, put_events
from tests.relay.test_notices import Mail


def wire(
    db: Database,
    tmp_path: Path,
    *,
    reopen_days: float = 7,
    replies: ReplyAddresses | None = None,
) -> tuple[Relay, Mail]:
    mailbox = LocalMailbox(tmp_path / "mailbox", sender="support@careline.test")
    handlers = Handlers()
    chats = {c: CollectingChannel(c) for c in (Channel.TELEGRAM, Channel.WEBCHAT)}
    CustomerNotices(
        db,
        channels=chats,
        email=mailbox,
        reopen_days=reopen_days,
        reply_to=replies.for_ticket if replies else None,
    ).register(handlers)
    return Relay(db, handlers), Mail(tmp_path / "mailbox")


def both_parts(mail: Mail, to: str) -> list[str]:
    """Every email to `to`, its plain text and its HTML, as the customer reads them."""
    found = []
    for message in mail.messages(to):
        for kind in ("plain", "html"):
            part = message.get_body((kind,))
            assert part is not None
            found.append(part.get_content())
    return found


async def test_resolved_email_numbers_each_rating_choice_once(db: Database, tmp_path: Path) -> None:
    relay, mail = wire(db, tmp_path)
    _, ticket_id, _ = await customer_with_ticket(db, "noa", email="noa@example.org")
    async with db.uow() as uow:
        await services.resolve_ticket(uow, ticket_id)
        await uow.commit()
    await drain(relay)

    [resolved] = [m for m in mail.messages("noa@example.org") if "resolved" in m["Subject"]]
    text = resolved.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = resolved.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "  1. Poor\n" in text and "  5. Excellent\n" in text
    assert "1 - Poor" not in text and "1. 1" not in text
    assert "<li>1. Poor</li>" in html and "<ol>" not in html  # an <ol> would number it again
    assert "Answer on Telegram with the number." in text


async def test_no_email_asks_for_a_reply_by_email_and_each_says_which_chat_to_use(
    db: Database, tmp_path: Path
) -> None:
    relay, mail = wire(db, tmp_path)
    _, ticket_id, _ = await customer_with_ticket(
        db, "max", email="max@example.org", channel=Channel.WEBCHAT
    )
    anna = await agent(db)
    async with db.uow() as uow:
        await services.request_human(uow, ticket_id)
        await services.assign_ticket(uow, ticket_id, anna)
        await services.add_agent_reply(uow, ticket_id, anna, "Which card was it?")
        await services.change_status(uow, ticket_id, Status.WAITING)
        await services.resolve_ticket(uow, ticket_id)
        await uow.commit()
    await drain(relay)

    reference = f"CR-{ticket_id + 1000}"
    emails = both_parts(mail, "max@example.org")
    assert len(emails) == 2 * 6  # opened, queued, assigned, replied, waiting, resolved
    for body in emails:
        assert "reply to this email" not in body.lower()
        assert "Just reply" not in body
        assert "you here" not in body  # "here" is the chat, not an email
        assert f"To add to {reference}, write to us in the web chat." in body
    assert any("answers you in the web chat" in b for b in emails)  # opened
    assert any("Write to us in the web chat to continue." in b for b in emails)  # waiting


async def test_with_a_reply_domain_each_customer_email_answers_to_its_ticket_and_says_so(
    db: Database, tmp_path: Path
) -> None:
    replies = ReplyAddresses.keyed("reply.careline.test", "k" * 32)
    relay, mail = wire(db, tmp_path, replies=replies)
    _, ticket_id, _ = await customer_with_ticket(
        db, "eva", email="eva@example.org", channel=Channel.WEBCHAT
    )
    anna = await agent(db)
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket_id, anna)
        await services.add_agent_reply(uow, ticket_id, anna, "Which card was it?")
        await uow.commit()
    await drain(relay)

    reference = f"CR-{ticket_id + 1000}"
    messages = mail.messages("eva@example.org")
    assert len(messages) == 3  # opened, assigned, replied
    for message in messages:
        assert message["Reply-To"] == replies.for_ticket(ticket_id)
        assert replies.ticket(message["Reply-To"]) == ticket_id
    for body in both_parts(mail, "eva@example.org"):
        assert f"To add to {reference}, reply to this email or write to us in the web chat." in body
    for message in mail.messages("anna@support.example"):  # the assignee answers in Slack
        assert message["Reply-To"] != replies.for_ticket(ticket_id)


async def test_email_names_status_and_priority_in_words_and_agrees_with_its_numbers(
    db: Database, tmp_path: Path
) -> None:
    relay, mail = wire(db, tmp_path, reopen_days=1)
    _, ticket_id, _ = await customer_with_ticket(db, "ida", email="ida@example.org")
    async with db.uow() as uow:
        await services.change_status(uow, ticket_id, Status.WAITING)
        await uow.commit()
    await drain(relay)
    async with db.uow() as uow:
        await services.resolve_ticket(uow, ticket_id)
        await uow.commit()
    await drain(relay)

    bodies = mail.bodies("ida@example.org")
    [waiting] = [b for b in bodies if "waiting for your answer" in b]
    [resolved] = [b for b in bodies if "is resolved" in b]
    assert "Status: waiting for your reply · Priority: Normal" in waiting
    assert "status changed to waiting for your reply" in waiting  # the timeline too
    assert "within 1 day and it reopens" in resolved
    assert " UTC  You: ida's card was charged twice" in waiting  # times say their zone
    assert "Priority: Normal\n\nTimeline\n" in waiting


async def test_verification_code_expiring_in_a_minute_says_minute(
    db: Database, tmp_path: Path
) -> None:
    relay, mail = wire(db, tmp_path)
    customer_id, _, _ = await customer_with_ticket(db, "kai", notify=Notify.CHAT)
    now = utcnow()
    async with db.uow() as uow:
        result = await uow.session.execute(
            insert(t.email_verifications)
            .values(
                customer_id=customer_id,
                email="kai@example.org",
                code="120934",
                created_at=now,
                expires_at=now + timedelta(seconds=70),
            )
            .returning(t.email_verifications.c.id)
        )
        verification_id = int(result.scalar_one())
        customer = await uow.customers.get(customer_id)
        assert customer is not None
        customer.record(EmailVerificationRequested(customer_id, verification_id))
        await uow.commit()
    await drain(relay)

    for body in both_parts(mail, "kai@example.org"):
        assert "It expires in 1 minute." in body


async def test_sla_breach_email_tells_the_assignee_why_they_get_it(
    db: Database, tmp_path: Path
) -> None:
    relay, mail = wire(db, tmp_path)
    _, ticket_id, _ = await customer_with_ticket(db, "lou", notify=Notify.CHAT)
    anna = await agent(db)
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket_id, anna)
        await uow.commit()
    await drain(relay)
    await put_events(db, [SlaBreached(ticket_id, "first_response")])
    await drain(relay)

    [text] = mail.bodies("anna@support.example")
    assert text.startswith("Hello Anna Berg,")
    assert f"because CR-{ticket_id + 1000} is assigned to you" in text
    assert "write to us" not in text


async def test_a_spanish_speaking_customer_is_told_everything_in_spanish(
    db: Database, tmp_path: Path
) -> None:
    """Chat notices, buttons, emails and their every word, in the customer's language."""
    mailbox = LocalMailbox(tmp_path / "mailbox", sender="support@careline.test")
    handlers = Handlers()
    chat = CollectingChannel(Channel.TELEGRAM)
    CustomerNotices(db, channels={Channel.TELEGRAM: chat}, email=mailbox).register(handlers)
    relay, mail = Relay(db, handlers), Mail(tmp_path / "mailbox")
    _, ticket_id, chat_id = await customer_with_ticket(
        db, "pilar", email="pilar@example.org", language="es-ES"
    )
    anna = await agent(db)
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket_id, anna)
        await services.add_agent_reply(uow, ticket_id, anna, "¿Qué tarjeta era?")
        await services.resolve_ticket(uow, ticket_id)
        await uow.commit()
    await drain(relay)

    reference = f"CR-{ticket_id + 1000}"
    texts = chat.texts(chat_id)
    assert f"Anna Berg, de nuestro equipo, se encarga ahora de {reference}." in texts
    assert "Anna Berg: ¿Qué tarjeta era?" in texts
    assert any(t.startswith(f"{reference} está resuelto.") for t in texts)
    [resolved] = [r for _, r in chat.sent if r.choices]
    assert [c.label for c in resolved.choices][0::4] == ["1 - Mal", "5 - Excelente"]

    subjects = sorted(m["Subject"] for m in mail.messages("pilar@example.org"))
    assert subjects == sorted([
        f"Hemos recibido su solicitud: {reference}",
        f"Anna Berg se encarga de {reference}",
        f"Anna Berg ha respondido en {reference}",
        f"{reference} está resuelto",
    ])  # fmt: skip
    for body in both_parts(mail, "pilar@example.org"):
        assert "Hola, pilar:" in body
        assert f"Para añadir algo a {reference}, escríbanos en Telegram." in body
        for english in ("Hello", "Status", "Priority", "Timeline", "write to us", "You:"):
            assert english not in body, english
    resolved_text = next(
        m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        for m in mail.messages("pilar@example.org")
        if "resuelto" in m["Subject"]
    )
    assert "en un plazo de 7 días" in resolved_text
    assert "  1. Mal\n" in resolved_text and "Responda en Telegram con el número." in resolved_text
    assert "Estado: resuelto · Urgencia: Normal · Agente: Anna Berg" in resolved_text
    assert "Historial" in resolved_text and "Usted: pilar's card was charged twice" in resolved_text
