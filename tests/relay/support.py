"""Helpers for relay tests: outbox rows straight into the table, and reading the results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, text

from bots.channels import Unreachable
from core import services
from core.db import tables as t
from core.db.database import OUTBOX_CHANNEL, Database
from core.events import Event
from core.model import Channel, Notify, utcnow
from dialogs.turn import Reply
from tests.support.customers import register_customer


async def put_events(db: Database, events: list[Event]) -> list[int]:
    """Write events to the outbox as a unit of work's commit would; return their row ids."""
    now = utcnow()
    rows = [
        {
            "event_type": e.name,
            "payload": e.to_payload(),
            "status": "pending",
            "created_at": now,
            "available_at": now,
            "attempts": 0,
        }
        for e in events
    ]
    async with db.engine.begin() as conn:
        result = await conn.execute(insert(t.outbox).returning(t.outbox.c.id), rows)
        ids = [int(r[0]) for r in result.all()]
        if db.is_postgres:
            await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
    return sorted(ids)


async def deliveries(db: Database) -> dict[tuple[int, str], dict[str, Any]]:
    d = t.outbox_deliveries.c
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(t.outbox_deliveries))).mappings().all()
    return {(int(r[d.event_id.name]), r[d.handler.name]): dict(r) for r in rows}


async def outbox_rows(db: Database) -> dict[int, dict[str, Any]]:
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(t.outbox))).mappings().all()
    return {int(r["id"]): dict(r) for r in rows}


async def drain(relay: Any, *, rounds: int = 50) -> None:
    """Work the outbox until a claim comes back empty."""
    for _ in range(rounds):
        if await relay.drain_once() == 0:
            return
    raise AssertionError("the outbox did not drain")


# --- customers and tickets through the real services ------------------------------------


@dataclass
class CollectingChannel:
    """A chat channel that keeps what it was asked to send (Rasa's CollectingOutputChannel)."""

    channel: Channel = Channel.TELEGRAM
    sent: list[tuple[str, Reply]] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)  # chats that answer like Telegram's 403

    async def send(self, chat_id: str, reply: Reply) -> str:
        if chat_id in self.blocked:
            raise Unreachable("Forbidden: bot was blocked by the user")
        self.sent.append((chat_id, reply))
        return f"msg-{len(self.sent)}"

    def texts(self, chat_id: str) -> list[str]:
        return [r.text for c, r in self.sent if c == chat_id]


async def customer_with_ticket(
    db: Database,
    name: str,
    *,
    email: str | None = None,
    verified: bool = True,
    notify: Notify = Notify.BOTH,
    channel: Channel = Channel.TELEGRAM,
    language: str = "en",
) -> tuple[int, int, str]:
    """A customer writing from `channel` with an open ticket; returns (customer, ticket, chat)."""
    chat_id = f"chat-{name}"
    async with db.uow() as uow:
        customer, identity = await register_customer(
            uow, channel=channel, external_id=f"user-{name}", chat_id=chat_id, display_name=name
        )
        customer.email = email
        customer.email_verified = verified
        customer.notify = notify
        customer.language = language
        ticket = await services.open_ticket(
            uow,
            customer_id=customer.id or 0,
            description=f"{name}'s card was charged twice",
            category="billing",
            channel=channel,
            identity_id=identity.id,
        )
        await uow.commit()
    assert customer.id is not None and ticket.id is not None
    return customer.id, ticket.id, chat_id


async def agent(db: Database, name: str = "Anna Berg") -> int:
    async with db.uow() as uow:
        created = await services.create_agent(
            uow, name=name, email=f"{name.split()[0].lower()}@support.example"
        )
        await uow.commit()
    assert created.id is not None
    return created.id
