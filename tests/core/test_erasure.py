"""Erasure erases: every table and column that can hold a customer's personal data is named
here, a customer is seeded into each through the real services, and after erasure none of
their values is left anywhere in the database (stored files' bytes too) or in their export."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import JSON, String, insert, select
from sqlalchemy.types import TypeDecorator

from bots.webchat import SendBody, WebChat, WebChatLines, visitor_tickets
from core import services
from core.db import tables as t
from core.db.database import Database
from core.db.files import SqlFileStore
from core.db.inbox import SqlInbox
from core.db.knowledge import SqlKnowledgeBase
from core.db.ratelimit import SqlRateLimiter
from core.db.sms import SmsMenus
from core.files import describe
from core.knowledge import Gap, GapReason
from core.lifecycle import Status
from core.model import Author, Channel, ChannelIdentity, Conversation, Message, utcnow
from core.ports import RateLimit
from dialogs.turn import Reply
from tests.dialogs.conftest import make_engine
from tests.support.customers import register_customer

# Columns that can hold a customer's personal data, and what erasure does to each.
PERSONAL = {
    "customers.display_name": "set to 'erased'",
    "customers.email": "cleared",
    "customers.phone": "cleared",
    "channel_identities.external_id": "replaced by erased:<id>",
    "channel_identities.chat_id": "cleared",
    "channel_identities.display_name": "cleared",
    "tickets.subject": "set to '(erased)'",
    "tickets.description": "set to '(erased)'",
    "tickets.csat_comment": "cleared",
    "messages.body": "set to '(erased)' whoever wrote it",
    "messages.external_id": "cleared for the customer's (embeds the Telegram chat)",
    "messages.attachments": "emptied",
    "stored_files.name": "row deleted (by sender, ticket or a message naming it)",
    "stored_files.owner": "row deleted",
    "send_pacing.key": "their chats' rows deleted (<bot>:<chat id>)",
    "sms_menus.chat_id": "their numbers' rows deleted",
    "sms_menus.choices": "row deleted",
    "messages.delivered_id": "cleared",
    "ticket_activities.detail": "staff's free-text reason dropped",
    "conversations.slots": "reset",
    "conversations.history": "reset",
    "email_verifications.email": "row deleted",
    "email_suppressions.email": "row deleted",
    "webchat_messages.visitor_id": "rows deleted",
    "webchat_messages.body": "rows deleted",
    "inbox.payload": "blanked when finished and mentioning them",
    "inbox.error": "blanked with the payload",
    "outbox.payload": "a status change's reason dropped (ids otherwise)",
    "outbox.last_error": "cleared for their events",
    "outbox_deliveries.last_error": "cleared for their events",
    "outbox_deliveries.provider_id": "cleared for their events (Slack ts kept)",
    "rate_limits.key": "their visitor's counters deleted",
    "knowledge_gaps.question": "rows deleted (their unanswered questions)",
}
# Columns that never hold a customer's personal data.
NOT_PERSONAL = {
    "customers.language",
    "knowledge_gaps.language",
    "tickets.language",
    "knowledge_gaps.reason",
    "customers.notify",
    "channel_identities.channel",
    "tickets.category",
    "tickets.priority",
    "tickets.channel",
    "tickets.status",
    "messages.author",
    "messages.channel",
    "ticket_activities.kind",
    "ticket_activities.actor",
    "conversations.state",
    "email_verifications.code",
    "email_suppressions.reason",
    "inbox.source",
    "inbox.key",  # update id, event id, our own post markers
    "inbox.status",
    "outbox.event_type",
    "outbox.status",
    "outbox.locked_by",
    "outbox_deliveries.handler",
    "outbox_deliveries.status",
    "rate_limits.name",
    "slack_threads.team_id",
    "slack_threads.channel_id",
    "slack_threads.thread_ts",
    "settings_flags.name",
    "settings_flags.value",
    "webchat_messages.direction",
    "api_keys.role",
    "api_keys.prefix",
    "api_keys.key_hash",
    # Knowledge base articles: what the support team wrote for every customer.
    "knowledge_articles.key",
    "knowledge_articles.title",
    "knowledge_articles.body",
    "knowledge_articles.language",
    "knowledge_articles.tags",
    "knowledge_articles.questions",
    "knowledge_articles.status",
    "knowledge_article_versions.change",
    "knowledge_article_versions.title",
    "knowledge_article_versions.body",
    "knowledge_article_versions.language",
    "knowledge_article_versions.tags",
    "knowledge_article_versions.questions",
    "knowledge_article_versions.status",
    # Staff, not customers: an agent's own data is not erased with a customer's.
    "knowledge_articles.created_by",  # an admin key's name or an agent id
    "knowledge_articles.updated_by",
    "knowledge_article_versions.changed_by",
    "agents.name",
    "agents.email",
    "agents.slack_user_id",
    "agents.skills",
    "agents.languages",
    "agents.availability",
    "api_keys.name",
    "stored_files.id",
    "send_pacing.name",
    "stored_files.mime_type",
    "stored_files.sha256",
    "email_verifications.kind",  # "email" or "phone"
    # Training examples staff write, like an article's questions, and the models' bookkeeping.
    "intent_examples.intent",
    "intent_examples.text",
    "intent_examples.changed_by",
    "nlu_state.training_key",
    "nlu_state.training_by",  # a replica's host name and process
    "nlu_state.stage",
    "nlu_state.failed_key",
    "nlu_state.error",
    "nlu_models.key",
    "nlu_models.backend",
    # The console's staff accounts, their invitations and sessions, and saved replies
    # (written for every customer, with placeholders for names).
    "staff_accounts.email",
    "staff_accounts.name",
    "staff_accounts.role",
    "staff_accounts.password_hash",
    "staff_invitations.email",
    "staff_invitations.name",
    "staff_invitations.role",
    "staff_invitations.nonce",
    "staff_invitations.created_by",
    "staff_sessions.token_hash",
    "staff_sessions.csrf",
    "canned_responses.title",
    "canned_responses.body",
    "canned_responses.updated_by",
}

NAME, IDENTITY_NAME = "Ada Lovelace", "Countess Augusta"
EMAIL, OLD_EMAIL = "ada.lovelace@example.test", "ada.old@example.test"
PHONE = "+44 7700 900123"
SMS_NUMBER = "+447700900123"  # the same number as Twilio writes it
SECRET = "My secret account number is 12345678"
TELEGRAM_ID = "987654321"
FILE_NAME = "ada-passport.pdf"
UNANSWERED = "Can my cat Babbage share my analytical engine plan?"
SEEDED = [
    UNANSWERED,
    "Lovelace",
    IDENTITY_NAME,
    EMAIL,
    OLD_EMAIL,
    PHONE,
    SMS_NUMBER,
    "12345678",
    "secret account",
    TELEGRAM_ID,
    FILE_NAME,
]


def _text_columns() -> set[str]:
    found = set()
    for table in t.metadata.sorted_tables:
        for column in table.columns:
            kind = column.type
            if isinstance(kind, TypeDecorator):
                kind = kind.impl_instance
            if isinstance(kind, (String, JSON)):
                found.add(f"{table.name}.{column.name}")
    return found


def test_every_text_column_is_classified_as_personal_or_not() -> None:
    columns = _text_columns()
    assert not set(PERSONAL) & NOT_PERSONAL
    assert columns - set(PERSONAL) - NOT_PERSONAL == set(), "classify the new columns here"
    assert set(PERSONAL) | NOT_PERSONAL <= columns, "a classified column no longer exists"


async def _store(db: Database, name: str, **where: object) -> str:
    content = f"%PDF-1.4 {name} of {NAME}".encode()
    file = describe(content, name=name, declared="application/pdf", limit=1000, **where)  # type: ignore[arg-type]
    return (await SqlFileStore(db).put(file, content)).id


async def _seed(db: Database) -> dict[str, int | str]:
    """One customer with data in every personal column, through the real services."""
    visitor = uuid.uuid4().hex
    stored = await _store(db, FILE_NAME)  # named by their message
    await _store(db, "orphan-upload.pdf", owner=f"webchat:{visitor}")  # its turn never ran
    async with db.uow() as uow:
        customer, web = await register_customer(
            uow, channel=Channel.WEBCHAT, external_id=visitor, chat_id=visitor, display_name=NAME
        )
        assert customer.id is not None and web.id is not None
        customer.email, customer.email_verified, customer.phone = EMAIL, True, PHONE
        telegram = await uow.customers.add_identity(
            ChannelIdentity(
                customer_id=customer.id,
                channel=Channel.TELEGRAM,
                external_id=TELEGRAM_ID,
                chat_id=TELEGRAM_ID,
                display_name=IDENTITY_NAME,
            )
        )
        sms = await uow.customers.add_identity(
            ChannelIdentity(
                customer_id=customer.id,
                channel=Channel.SMS,
                external_id=SMS_NUMBER,
                chat_id=SMS_NUMBER,
            )
        )
        for identity_id in (web.id, telegram.id, sms.id):
            assert identity_id is not None
            # The web chat's conversation came with the registration (idle): fill it.
            conversation = await uow.conversations.get(identity_id) or await uow.conversations.add(
                Conversation(identity_id=identity_id)
            )
            conversation.state = "collecting"
            conversation.slots = {"draft": SECRET}
            conversation.history = [{"who": "customer", "text": SECRET}]
        now = utcnow()
        await uow.email_verifications.add(
            customer_id=customer.id,
            email=OLD_EMAIL,
            code="123456",
            created_at=now,
            expires_at=now + timedelta(hours=1),
        )
        await uow.session.execute(
            insert(t.email_suppressions).values(
                email=EMAIL.title(), reason="bounce", created_at=now
            )
        )
        agent = await services.create_agent(uow, name="Grace", email="grace@example.test")
        assert agent.id is not None
        ticket = await services.open_ticket(
            uow,
            customer_id=customer.id,
            description=SECRET,
            category="billing",
            channel=Channel.WEBCHAT,
            identity_id=web.id,
            external_id="web:c1",
            attachments=[
                {
                    "kind": "document",
                    "stored_id": stored,
                    "name": FILE_NAME,
                    "mime_type": "application/pdf",
                    "size": 30,
                }
            ],
        )
        assert ticket.id is not None
        later = await services.add_customer_message(
            uow,
            ticket.id,
            f"Also my phone is {PHONE}",
            channel=Channel.TELEGRAM,
            external_id=f"{TELEGRAM_ID}:77",
        )
        await services.add_agent_reply(
            uow,
            ticket.id,
            agent.id,
            f"Dear {NAME}, account 12345678 is fixed",
            channel=Channel.SLACK,
            external_id="C0DESK:1700000000.000200",
        )
        await services.add_internal_note(uow, ticket.id, f"{NAME} called from {PHONE}")
        await services.change_status(
            uow, ticket.id, Status.WAITING, reason=f"waiting for {NAME}'s statement"
        )
        await services.resolve_ticket(uow, ticket.id)
        await services.rate_ticket(uow, ticket.id, 5, f"Thanks, {NAME}")
        later.delivered_id = f"{TELEGRAM_ID}:78"
        await uow.commit()
    await _store(db, "agent-statement.pdf", ticket_id=ticket.id)  # an agent's, for them
    async with db.uow() as uow:
        opened = await uow.session.scalar(select(t.outbox.c.id).order_by(t.outbox.c.id).limit(1))
        failure = f"550 5.1.1 <{EMAIL}>: unknown"
        await uow.session.execute(
            t.outbox.update().where(t.outbox.c.id == opened).values(last_error=failure)
        )
        await uow.session.execute(
            insert(t.outbox_deliveries).values(
                event_id=opened,
                handler="telegram.confirm",
                status="dead",
                provider_id=f"{TELEGRAM_ID}:99",
                last_error=failure,
                updated_at=utcnow(),
            )
        )
        # An agent's reply typed in the Slack thread, as its raw event.
        event = {"event": {"type": "message", "text": f"Dear {NAME}, account 12345678 is fixed"}}
        await uow.inbox.record("slack", "Ev0001", payload=event)
        await uow.inbox.mark("slack", "Ev0001", "done")
        await uow.commit()
    async with db.uow() as uow:
        gap = Gap(customer.id, "en", UNANSWERED, GapReason.NOT_UNDERSTOOD, utcnow())
        await SqlKnowledgeBase(uow.session).add_gap(gap)
        await uow.commit()
    telegram_inbox = SqlInbox(db, "telegram")
    await telegram_inbox.begin("5001")
    update = {"update_id": 5001, "message": {"from": {"id": int(TELEGRAM_ID)}, "text": SECRET}}
    await telegram_inbox.park("5001", "could not read it", update)
    await telegram_inbox.begin("5002")
    await telegram_inbox.answered("5002", [Reply(f"{ticket.reference} is yours, {NAME}").to_json()])
    await telegram_inbox.done("5002")
    lines = WebChatLines(db)
    await lines.add(visitor, "in", {"text": SECRET})
    await lines.add(visitor, "out", {"text": f"Thanks {NAME}"})
    await SqlRateLimiter(db).hit(RateLimit("webchat_messages", 10, 60), visitor)
    async with db.engine.begin() as conn:  # Telegram's send pacing of their chat
        await conn.execute(
            insert(t.send_pacing).values(name="telegram.chat", key=f"123:{TELEGRAM_ID}", tat=1.0)
        )
    await SmsMenus(db).remember(SMS_NUMBER, [(f"Rate {ticket.reference}, {NAME}", "rate:1")])
    return {"customer": customer.id, "ticket": ticket.id, "visitor": visitor, "file": stored}


async def _other_customer(db: Database) -> int:
    async with db.uow() as uow:
        customer, _ = await register_customer(
            uow, channel=Channel.TELEGRAM, external_id="555000111", chat_id="555000111"
        )
        assert customer.id is not None
        ticket = await services.open_ticket(
            uow, customer_id=customer.id, description="Bob's router is broken", category="tech"
        )
        await uow.commit()
    assert ticket.id is not None
    return ticket.id


async def _dump(db: Database) -> str:
    """Every row of every table, as text."""
    parts = []
    async with db.engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                parts.append(f"{table.name}: {json.dumps([*row], default=str, ensure_ascii=False)}")
    return "\n".join(parts)


async def test_erasure_leaves_nothing_of_the_customer_anywhere(
    db: Database, tmp_path: Path
) -> None:
    seeded = await _seed(db)
    others = await _other_customer(db)
    before = (await _dump(db)).lower()
    missing = [v for v in [*SEEDED, str(seeded["visitor"])] if v.lower() not in before]
    assert missing == [], "the seed must reach every value it later looks for"

    async with db.uow() as uow:
        await services.erase_customer(uow, int(seeded["customer"]))
        await uow.commit()

    after = (await _dump(db)).lower()
    left = [v for v in [*SEEDED, str(seeded["visitor"])] if v.lower() in after]
    assert left == []
    assert await SqlFileStore(db).read(str(seeded["file"])) is None
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(t.stored_files.c.id))).all() == []
    assert "bob's router is broken" in after  # nobody else's data goes with theirs
    async with db.uow() as uow:
        other = await services.get_ticket(uow, others)
    assert other.description == "Bob's router is broken"


async def test_an_erased_customer_keeps_only_anonymous_ticket_figures(
    db: Database, tmp_path: Path
) -> None:
    seeded = await _seed(db)
    customer_id, ticket_id = int(seeded["customer"]), int(seeded["ticket"])
    async with db.uow() as uow:
        await services.erase_customer(uow, customer_id)
        await uow.commit()
    async with db.uow() as uow:
        export = await services.export_customer_data(uow, customer_id)
        ticket = await services.get_ticket(uow, ticket_id)
        timeline = await uow.tickets.timeline(ticket_id)
    assert export["tickets"] == [] and export["identities"] == []
    assert not any(v.lower() in json.dumps(export).lower() for v in SEEDED)
    assert (ticket.id, ticket.category, ticket.status, ticket.csat_score) == (
        ticket_id,
        "billing",
        Status.RESOLVED,
        5,
    )
    assert ticket.created_at is not None and ticket.resolved_at is not None
    authors = [e.author for e in timeline if isinstance(e, Message)]
    assert authors == [Author.CUSTOMER, Author.CUSTOMER, Author.AGENT, Author.NOTE]
    erased = [e for e in timeline if getattr(e, "kind", None) == "erased"]
    assert len(erased) == 1 and erased[0].detail["transcript_lines"] == 2
    assert erased[0].detail["messages"] == 4


async def test_the_web_chat_forgets_an_erased_visitor(db: Database, tmp_path: Path) -> None:
    lines, visitor = WebChatLines(db), uuid.uuid4().hex
    chat = WebChat(
        db=db, engine=make_engine(db), lines=lines, visitors=None, files=SqlFileStore(db),
        max_upload_bytes=1000, max_text_chars=2000, poll_seconds=None,
        tickets_of=lambda v: visitor_tickets(db, v),
    )  # fmt: skip
    said = [("I want to complain", None), (SECRET, None), ("", "cat:telecom"), ("", "prio:high")]
    said += [("", "skip"), ("", "confirm"), ("/mydata", None), ("2", None), ("", "erase_yes")]
    for text, choice in said:
        await chat.turn(visitor, SendBody(text=text, choice=choice))
    shown = json.dumps(await lines.since(visitor, 0))
    assert "12345678" not in shown and "has been erased" in shown
    assert await visitor_tickets(db, visitor) == []
