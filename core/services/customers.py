"""Customers: first contact and registration, export, and erasure of every copy."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from core import events
from core.errors import NotFound
from core.lifecycle import Status
from core.model import (
    Author,
    Channel,
    Customer,
    Message,
    Ticket,
    utcnow,
)
from core.ports import DialogStore, PersonalTraces, TurnRecord, UnitOfWork
from core.services.common import move, note_activity


async def find_or_register(
    store: DialogStore,
    *,
    channel: Channel,
    external_id: str,
    chat_id: str,
    display_name: str = "",
    language: str = "en",
    now: datetime | None = None,
) -> tuple[TurnRecord, bool]:
    """Who writes, registering them on first contact: the one way a customer is registered
    (the dialog engine's turns, and everything else). True when they were registered now.
    The identity's chat follows the latest message. A concurrent first contact of the same
    identity raises the store's integrity error (the caller's transaction retries)."""
    record = await store.load(channel, external_id)
    if record is None:
        registered = await store.register(
            channel=channel,
            external_id=external_id,
            chat_id=chat_id,
            display_name=display_name[:200],
            language=(language or "en")[:16],
            now=now or utcnow(),
        )
        return registered, True
    if record.chat_id != chat_id:
        await store.move_chat(record.identity_id, chat_id)
        record = replace(record, chat_id=chat_id)
    return record, False


async def get_customer(uow: UnitOfWork, customer_id: int) -> Customer:
    customer = await uow.customers.get(customer_id)
    if customer is None:
        raise NotFound(f"there is no customer {customer_id}")
    return customer


async def export_customer_data(uow: UnitOfWork, customer_id: int) -> dict[str, Any]:
    """Everything stored about one customer, as plain data (nothing once they are erased)."""
    customer = await get_customer(uow, customer_id)
    if customer.erased_at is not None:
        return {"erased_at": customer.erased_at.isoformat(), "identities": [], "tickets": []}
    tickets = await uow.tickets.for_customer(customer_id)
    exported_tickets = []
    for t in tickets:
        timeline = await uow.tickets.timeline(t.id or 0)
        exported_tickets.append(
            {
                "reference": t.reference,
                "subject": t.subject,
                "description": t.description,
                "category": t.category,
                "priority": t.priority.value,
                "status": t.status.value,
                "created_at": t.created_at.isoformat(),
                "csat_score": t.csat_score,
                "csat_comment": t.csat_comment,
                "messages": [
                    {"author": m.author.value, "body": m.body, "at": m.created_at.isoformat()}
                    for m in timeline
                    if isinstance(m, Message) and m.author != Author.NOTE
                ],
            }
        )
    return {
        "customer": {
            "display_name": customer.display_name,
            "language": customer.language,
            "email": customer.email,
            "email_verified": customer.email_verified,
            "phone": customer.phone,
            "phone_verified": customer.phone_verified,
            "notify": customer.notify.value,
            "texts": customer.texts,
            "calls": customer.calls,
            "created_at": customer.created_at.isoformat(),
        },
        "identities": [
            {"channel": i.channel.value, "user_id": i.external_id, "name": i.display_name}
            for i in customer.identities
        ],
        "tickets": exported_tickets,
    }


ERASED = "(erased)"


ERASED_NAME = "erased"
# Shorter words are too common ("yes", "2") to mark a raw payload as theirs.


MIN_TRACE_WORDS = 8


MIN_NAME = 3  # identifiers and names: a false match only blanks a finished payload


TRACE_PREFIX = 60  # enough of a message to recognise it in a raw payload


async def erase_customer(uow: UnitOfWork, customer_id: int, now: datetime | None = None) -> None:
    """Erase every copy of a customer's personal data; keep what a business may keep.

    Kept: the customer row (as "erased", with `erased_at`), ticket references, category,
    priority, status, dates and CSAT scores, so reports still count. Gone: names, addresses,
    phone numbers, channel identities, the words of every message of their tickets, their
    attachments, conversation state, the web-chat transcript, email codes and suppressions,
    and raw platform payloads that carry them. Each ticket records an `erased` activity with
    the counts; `CustomerErased` lets the relay clean copies held elsewhere (Slack threads,
    stored files). Open tickets are closed.
    """
    now = now or utcnow()
    customer = await get_customer(uow, customer_id)
    tickets = list(await uow.tickets.for_customer(customer_id))
    traces = await _personal_traces(uow, customer, tickets)
    stored = await uow.erasure.stored_files(traces)
    counts = await uow.erasure.erase_copies(traces)
    _anonymise_customer(customer, now)
    for ticket in tickets:
        counts["messages"] = counts.get("messages", 0) + await _erase_ticket(uow, ticket, now)
    for ticket in tickets:
        await note_activity(uow, ticket, "erased", "system", now, **counts)
    customer.record(events.CustomerErased(customer_id=customer_id, file_ids=tuple(stored)))


async def _personal_traces(
    uow: UnitOfWork, customer: Customer, tickets: list[Ticket]
) -> PersonalTraces:
    """What marks copies as theirs, read before erasing."""
    needles = [customer.display_name, customer.email or "", customer.phone or ""]
    for identity in customer.identities:
        needles += [identity.external_id, identity.chat_id, identity.display_name]
    stored: list[str] = []
    for ticket in tickets:
        needles.append(ticket.reference)
        for entry in await uow.tickets.timeline(ticket.id or 0):
            if not isinstance(entry, Message):
                continue
            # Replies typed in Slack arrive as raw events too, and quote the customer.
            if len(entry.body.strip()) >= MIN_TRACE_WORDS:
                needles.append(entry.body.strip()[:TRACE_PREFIX])
            stored += [str(a["stored_id"]) for a in entry.attachments if a.get("stored_id")]
    assert customer.id is not None
    traces = PersonalTraces(
        customer_id=customer.id,
        ticket_ids=tuple(t.id for t in tickets if t.id is not None),
        identity_ids=tuple(i.id for i in customer.identities if i.id is not None),
        visitor_ids=tuple(
            i.external_id for i in customer.identities if i.channel == Channel.WEBCHAT
        ),
        emails=tuple(e for e in [customer.email] if e),
        needles=tuple(n for n in needles if len(n) >= MIN_NAME),
        file_ids=tuple(stored),
        file_owners=tuple(f"{i.channel.value}:{i.external_id}" for i in customer.identities),
        chat_ids=tuple(i.chat_id for i in customer.identities if i.chat_id),
    )
    return traces


def _anonymise_customer(customer: Customer, now: datetime) -> None:
    customer.display_name = ERASED_NAME
    customer.email = None
    customer.email_verified = False
    customer.phone = None
    customer.phone_verified = customer.texts = customer.calls = False
    customer.erased_at = now
    for identity in customer.identities:
        identity.display_name = ""
        # Unique per channel; a returning person is then a new customer.
        identity.external_id = f"erased:{identity.id}"
        identity.chat_id = ""
        identity.reachable = False


async def _erase_ticket(uow: UnitOfWork, ticket: Ticket, now: datetime) -> int:
    """Blank the ticket's words (agents' replies and notes quote the customer too)."""
    ticket.subject = ERASED
    ticket.description = ERASED
    ticket.csat_comment = None
    erased = 0
    for entry in await uow.tickets.timeline(ticket.id or 0):
        if isinstance(entry, Message):
            entry.body = ERASED
            entry.attachments = []
            entry.delivered_id = None  # a chat's message id can embed the chat
            if entry.author == Author.CUSTOMER:
                entry.external_id = None
            erased += 1
        elif "reason" in entry.detail:  # typed by staff: it may name the customer
            entry.detail = {k: v for k, v in entry.detail.items() if k != "reason"}
    if ticket.is_active:
        move(ticket, Status.CLOSED, now)
        await note_activity(uow, ticket, "status_changed", "system", now, to="closed")
    return erased
