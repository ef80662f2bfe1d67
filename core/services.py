"""Use cases of the ticket domain.

Each function works inside an open unit of work and does not commit: the caller commits, so a
dialog turn can update its state and open a ticket in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core import events
from core.errors import AgentUnavailable, CapacityExceeded, InvalidInput, NotFound, Refused
from core.lifecycle import Status
from core.model import (
    Agent,
    Author,
    Availability,
    Channel,
    ChannelIdentity,
    Customer,
    Message,
    Priority,
    Ticket,
    TicketActivity,
    base_language,
    utcnow,
)
from core.policy import SlaPolicy, pick_agent
from core.ports import PersonalTraces, UnitOfWork

MAX_SUBJECT = 200
MAX_BODY = 20_000
DEFAULT_REOPEN_WINDOW = timedelta(days=7)


# --- customers -------------------------------------------------------------------------


async def find_or_register_customer(
    uow: UnitOfWork,
    *,
    channel: Channel,
    external_id: str,
    chat_id: str,
    display_name: str = "",
    language: str = "en",
) -> tuple[Customer, ChannelIdentity]:
    """The customer behind a channel identity, registering both on first contact."""
    identity = await uow.customers.identity(channel, external_id)
    if identity is not None:
        assert identity.customer_id is not None
        customer = await uow.customers.get(identity.customer_id)
        if customer is None:
            raise NotFound(f"customer {identity.customer_id} is missing")
        if identity.chat_id != chat_id:
            identity.chat_id = chat_id
        return customer, identity
    customer, identity = first_contact(
        channel=channel,
        external_id=external_id,
        chat_id=chat_id,
        display_name=display_name,
        language=language,
    )
    customer = await uow.customers.add(customer)
    identity.customer_id = customer.id
    identity = await uow.customers.add_identity(identity)
    return customer, identity


def first_contact(
    *,
    channel: Channel,
    external_id: str,
    chat_id: str,
    display_name: str = "",
    language: str = "en",
    now: datetime | None = None,
) -> tuple[Customer, ChannelIdentity]:
    """A new customer and their first channel identity, not yet stored."""
    moment = now or utcnow()
    customer = Customer(
        display_name=display_name[:200], language=(language or "en")[:16], created_at=moment
    )
    identity = ChannelIdentity(
        channel=channel,
        external_id=external_id,
        chat_id=chat_id,
        display_name=display_name[:200],
        created_at=moment,
    )
    return customer, identity


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
        await _note_activity(uow, ticket, "erased", "system", now, **counts)
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
        _move(ticket, Status.CLOSED, now)
        await _note_activity(uow, ticket, "status_changed", "system", now, to="closed")
    return erased


# --- tickets ---------------------------------------------------------------------------


async def get_ticket(uow: UnitOfWork, ticket_id: int) -> Ticket:
    ticket = await uow.tickets.get(ticket_id)
    if ticket is None:
        raise NotFound(f"there is no ticket {ticket_id}")
    return ticket


async def open_ticket(
    uow: UnitOfWork,
    *,
    customer_id: int,
    description: str,
    category: str,
    priority: Priority = Priority.NORMAL,
    subject: str = "",
    channel: Channel = Channel.WEBCHAT,
    identity_id: int | None = None,
    external_id: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    sla: SlaPolicy | None = None,
    now: datetime | None = None,
    described_by: Author = Author.CUSTOMER,
) -> Ticket:
    """Open a ticket with the description as its first message: the customer's words, or a
    note for agents (`described_by=Author.NOTE`) when the customer has given none yet."""
    now = now or utcnow()
    description = description.strip()
    if not description:
        raise InvalidInput("a ticket needs a description")
    if len(description) > MAX_BODY:
        raise InvalidInput(f"the description is longer than {MAX_BODY} characters")
    category = category.strip().lower()
    if not category:
        raise InvalidInput("a ticket needs a category")
    customer = await get_customer(uow, customer_id)
    ticket = Ticket(
        customer_id=customer_id,
        language=base_language(customer.language),
        subject=(subject.strip() or _subject_from(description))[:MAX_SUBJECT],
        description=description,
        category=category[:64],
        priority=Priority(priority),
        channel=channel,
        identity_id=identity_id,
        created_at=now,
        updated_at=now,
    )
    (sla or SlaPolicy()).stamp(ticket, now)
    await uow.tickets.add(ticket)
    assert ticket.id is not None
    await uow.tickets.add_message(
        Message(
            ticket_id=ticket.id,
            author=described_by,
            body=description,
            channel=channel,
            external_id=external_id,
            attachments=attachments or [],
            created_at=now,
        )
    )
    ticket.record(events.TicketOpened(ticket_id=ticket.id))
    return ticket


async def add_customer_message(
    uow: UnitOfWork,
    ticket_id: int,
    body: str,
    *,
    channel: Channel,
    external_id: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    reopen_window: timedelta = DEFAULT_REOPEN_WINDOW,
    now: datetime | None = None,
) -> Message:
    """The customer wrote on a ticket. A redelivered platform message is a no-op.

    Waiting tickets go back to the agent; a resolved ticket reopens within the reopen window.
    """
    now = now or utcnow()
    if (seen := await _recorded(uow, channel, external_id)) is not None:
        return seen  # a redelivery of a platform message
    _check_body(body, attachments)
    ticket = await get_ticket(uow, ticket_id)
    if ticket.status == Status.CLOSED:
        raise Refused(f"{ticket.reference} is closed; open a new ticket instead")
    if ticket.status == Status.RESOLVED:
        if ticket.resolved_at is not None and now - ticket.resolved_at > reopen_window:
            raise Refused(f"{ticket.reference} was resolved too long ago to reopen")
        await reopen_ticket(uow, ticket_id, actor="customer", now=now)
    elif ticket.status == Status.WAITING:
        target = Status.OPEN if ticket.assignee_id is not None else Status.NEW
        await _change(uow, ticket, target, "customer", now, reason="customer replied")
    message = await uow.tickets.add_message(
        Message(
            ticket_id=ticket_id,
            author=Author.CUSTOMER,
            body=body,
            channel=channel,
            external_id=external_id,
            attachments=attachments or [],
            created_at=now,
        )
    )
    ticket.updated_at = now
    assert message.id is not None
    ticket.record(events.CustomerWrote(ticket_id=ticket_id, message_id=message.id))
    return message


async def add_agent_reply(
    uow: UnitOfWork,
    ticket_id: int,
    agent_id: int,
    body: str,
    *,
    channel: Channel = Channel.SLACK,
    external_id: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> Message:
    """An agent answered the customer. The first reply claims an unassigned ticket."""
    now = now or utcnow()
    if (seen := await _recorded(uow, channel, external_id)) is not None:
        return seen  # a redelivery of a platform message
    _check_body(body, attachments)
    ticket = await get_ticket(uow, ticket_id)
    agent = await _active_agent(uow, agent_id)
    if ticket.status == Status.CLOSED:
        raise Refused(f"{ticket.reference} is closed; the customer can no longer be answered")
    if ticket.assignee_id is None:
        await _assign(uow, ticket, agent, f"agent:{agent_id}", now)
    elif ticket.status in (Status.NEW, Status.WAITING):
        await _change(uow, ticket, Status.OPEN, f"agent:{agent_id}", now)
    message = await uow.tickets.add_message(
        Message(
            ticket_id=ticket_id,
            author=Author.AGENT,
            body=body,
            channel=channel,
            external_id=external_id,
            agent_id=agent_id,
            attachments=attachments or [],
            created_at=now,
        )
    )
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    ticket.updated_at = now
    assert message.id is not None
    ticket.record(
        events.AgentReplied(ticket_id=ticket_id, message_id=message.id, agent_id=agent_id)
    )
    for attachment in message.attachments:
        if attachment.get("stored_id"):
            ticket.record(
                events.AgentSentFile(
                    ticket_id=ticket_id,
                    message_id=message.id,
                    agent_id=agent_id,
                    stored_id=str(attachment["stored_id"]),
                )
            )
    return message


async def add_internal_note(
    uow: UnitOfWork,
    ticket_id: int,
    body: str,
    *,
    agent_id: int | None = None,
    channel: Channel = Channel.SLACK,
    external_id: str | None = None,
    now: datetime | None = None,
) -> Message:
    """A note for agents only; it never reaches the customer."""
    now = now or utcnow()
    if (seen := await _recorded(uow, channel, external_id)) is not None:
        return seen  # a redelivery of a platform message
    _check_body(body, None)
    ticket = await get_ticket(uow, ticket_id)
    message = await uow.tickets.add_message(
        Message(
            ticket_id=ticket_id,
            author=Author.NOTE,
            body=body,
            channel=channel,
            external_id=external_id,
            agent_id=agent_id,
            created_at=now,
        )
    )
    ticket.updated_at = now
    assert message.id is not None
    ticket.record(events.NoteAdded(ticket_id=ticket_id, message_id=message.id))
    return message


async def add_bot_message(
    uow: UnitOfWork, ticket_id: int, body: str, *, now: datetime | None = None
) -> Message:
    """What the bot told the customer about this ticket, kept in its timeline."""
    return await uow.tickets.add_message(
        Message(ticket_id=ticket_id, author=Author.BOT, body=body, created_at=now or utcnow())
    )


async def assign_ticket(
    uow: UnitOfWork,
    ticket_id: int,
    agent_id: int,
    *,
    actor: str = "system",
    force: bool = False,
    now: datetime | None = None,
) -> Ticket:
    """Assign (or reassign) a ticket. Checks the agent is active and has room unless forced."""
    now = now or utcnow()
    ticket = await get_ticket(uow, ticket_id)
    if not ticket.is_active:
        raise Refused(f"{ticket.reference} is {ticket.status.value}; reopen it first")
    agent = await uow.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"there is no agent {agent_id}")
    if ticket.assignee_id == agent_id:
        return ticket
    if not force:
        if not agent.active:
            raise AgentUnavailable(f"{agent.name} is deactivated")
        load = (await uow.agents.open_loads()).get(agent_id, 0)
        if load >= agent.capacity:
            raise CapacityExceeded(
                f"{agent.name} already holds {load} open tickets (capacity {agent.capacity})"
            )
    await _assign(uow, ticket, agent, actor, now)
    return ticket


async def unassign_ticket(
    uow: UnitOfWork, ticket_id: int, *, actor: str = "system", now: datetime | None = None
) -> Ticket:
    now = now or utcnow()
    ticket = await get_ticket(uow, ticket_id)
    previous = ticket.assignee_id
    if previous is None:
        raise Refused(f"{ticket.reference} is not assigned")
    ticket.assignee_id = None
    if ticket.status == Status.OPEN:
        _move(ticket, Status.NEW, now)
    ticket.updated_at = now
    await _note_activity(uow, ticket, "unassigned", actor, now, agent_id=previous)
    assert ticket.id is not None
    ticket.record(events.TicketUnassigned(ticket_id=ticket.id, previous_agent_id=previous))
    return ticket


async def auto_assign(
    uow: UnitOfWork, *, limit: int = 100, now: datetime | None = None
) -> list[tuple[Ticket, Agent]]:
    """Oldest unassigned first, each to the least-loaded available agent who can take it."""
    now = now or utcnow()
    agents = list(await uow.agents.list(active_only=True))
    if not agents:
        return []
    load = await uow.agents.open_loads()
    done: list[tuple[Ticket, Agent]] = []
    for ticket in await uow.tickets.unassigned(limit):
        agent = pick_agent(ticket, agents, load)
        if agent is None or agent.id is None:
            continue
        await _assign(uow, ticket, agent, "auto", now)
        load[agent.id] = load.get(agent.id, 0) + 1
        done.append((ticket, agent))
    return done


async def change_status(
    uow: UnitOfWork,
    ticket_id: int,
    target: Status,
    *,
    actor: str = "system",
    reason: str = "",
    now: datetime | None = None,
) -> Ticket:
    """Move a ticket along the lifecycle; an illegal move raises IllegalTransition."""
    now = now or utcnow()
    ticket = await get_ticket(uow, ticket_id)
    target = Status(target)
    if target == Status.OPEN and ticket.assignee_id is None:
        raise Refused(f"{ticket.reference} needs an assignee to be open")
    await _change(uow, ticket, target, actor, now, reason=reason)
    return ticket


async def resolve_ticket(
    uow: UnitOfWork, ticket_id: int, *, actor: str = "system", now: datetime | None = None
) -> Ticket:
    return await change_status(uow, ticket_id, Status.RESOLVED, actor=actor, now=now)


async def close_ticket(
    uow: UnitOfWork,
    ticket_id: int,
    *,
    actor: str = "system",
    reason: str = "",
    now: datetime | None = None,
) -> Ticket:
    return await change_status(uow, ticket_id, Status.CLOSED, actor=actor, reason=reason, now=now)


async def reopen_ticket(
    uow: UnitOfWork, ticket_id: int, *, actor: str = "system", now: datetime | None = None
) -> Ticket:
    """A resolved ticket goes back to its agent, or to the queue when it has none."""
    now = now or utcnow()
    ticket = await get_ticket(uow, ticket_id)
    if ticket.status != Status.RESOLVED:
        raise Refused(
            f"only a resolved ticket can be reopened; {ticket.reference} is {ticket.status.value}"
        )
    target = Status.OPEN if ticket.assignee_id is not None else Status.NEW
    await _change(uow, ticket, target, actor, now, reason="reopened")
    return ticket


async def change_priority(
    uow: UnitOfWork,
    ticket_id: int,
    priority: Priority,
    *,
    actor: str = "system",
    sla: SlaPolicy | None = None,
    now: datetime | None = None,
) -> Ticket:
    now = now or utcnow()
    ticket = await get_ticket(uow, ticket_id)
    priority = Priority(priority)
    if ticket.priority == priority:
        return ticket
    old = ticket.priority
    ticket.priority = priority
    (sla or SlaPolicy()).stamp(ticket, ticket.created_at)
    ticket.updated_at = now
    await _note_activity(uow, ticket, "priority_changed", actor, now, old=old.value, new=priority)
    assert ticket.id is not None
    ticket.record(
        events.TicketPriorityChanged(
            ticket_id=ticket.id, old_priority=old.value, new_priority=priority.value
        )
    )
    return ticket


async def request_human(
    uow: UnitOfWork, ticket_id: int, *, told_in_chat: bool = False, now: datetime | None = None
) -> int:
    """The customer asked for a person; returns their place in the queue (0 = with an agent).

    `told_in_chat`: the conversation itself answers with the customer's place, so no
    HumanRequested is recorded for the relay to announce a second time.
    """
    now = now or utcnow()
    ticket = await get_ticket(uow, ticket_id)
    if not ticket.human_requested:
        ticket.human_requested = True
        ticket.updated_at = now
        await _note_activity(uow, ticket, "human_requested", "customer", now)
        assert ticket.id is not None
        if not told_in_chat:
            ticket.record(events.HumanRequested(ticket_id=ticket.id))
    if ticket.assignee_id is not None:
        return 0
    return await uow.tickets.queue_position(ticket)


async def rate_ticket(
    uow: UnitOfWork,
    ticket_id: int,
    score: int,
    comment: str | None = None,
    *,
    now: datetime | None = None,
) -> Ticket:
    """Customer satisfaction, 1 to 5, once the ticket is resolved or closed."""
    now = now or utcnow()
    if not 1 <= score <= 5:
        raise InvalidInput("a rating is a whole number from 1 to 5")
    ticket = await get_ticket(uow, ticket_id)
    if ticket.status not in (Status.RESOLVED, Status.CLOSED):
        raise Refused(f"{ticket.reference} can be rated once it is resolved")
    if ticket.csat_score == score and comment is None:
        return ticket  # the same button pressed twice
    ticket.csat_score = score
    ticket.csat_comment = _rating_comment(comment)
    ticket.updated_at = now
    await _note_activity(uow, ticket, "rated", "customer", now, score=score)
    assert ticket.id is not None
    ticket.record(events.TicketRated(ticket_id=ticket.id, score=score))
    return ticket


async def comment_on_rating(
    uow: UnitOfWork, ticket_id: int, comment: str, *, now: datetime | None = None
) -> Ticket:
    """The optional comment that follows a score (the score is kept the moment it is given)."""
    ticket = await get_ticket(uow, ticket_id)
    if ticket.csat_score is None:
        raise Refused(f"{ticket.reference} has no rating to comment on")
    ticket.csat_comment = _rating_comment(comment)
    ticket.updated_at = now or utcnow()
    return ticket


def _rating_comment(comment: str | None) -> str | None:
    return (comment or "").strip()[:2000] or None


async def auto_close_resolved(
    uow: UnitOfWork, *, after: timedelta, limit: int = 500, now: datetime | None = None
) -> list[Ticket]:
    """Close tickets resolved longer ago than `after` with no word from the customer since."""
    now = now or utcnow()
    closed = []
    for ticket in await uow.tickets.resolved_before(now - after, limit):
        await _change(uow, ticket, Status.CLOSED, "system", now, reason="auto-closed")
        closed.append(ticket)
    return closed


@dataclass(frozen=True, slots=True)
class SlaBreach:
    ticket: Ticket
    kind: str  # "first_response" or "resolution"
    due: datetime


async def find_sla_breaches(
    uow: UnitOfWork, *, now: datetime | None = None, limit: int = 500
) -> list[SlaBreach]:
    """Active tickets past their first-response or resolution due time."""
    now = now or utcnow()
    breaches = []
    for ticket in await uow.tickets.sla_breaches(now, limit):
        if (
            ticket.first_response_at is None
            and ticket.first_response_due is not None
            and ticket.first_response_due <= now
        ):
            breaches.append(SlaBreach(ticket, "first_response", ticket.first_response_due))
        elif ticket.resolution_due is not None and ticket.resolution_due <= now:
            breaches.append(SlaBreach(ticket, "resolution", ticket.resolution_due))
    return breaches


async def announce_sla_breaches(
    uow: UnitOfWork, *, now: datetime | None = None, limit: int = 200
) -> list[SlaBreach]:
    """Record each new SLA breach once (timeline + SlaBreached event for Slack and email)."""
    now = now or utcnow()
    announced = []
    for ticket in await uow.tickets.unannounced_sla_breaches(now, limit):
        assert ticket.id is not None
        kinds = []
        if (
            ticket.first_response_at is None
            and ticket.first_response_due is not None
            and ticket.first_response_due <= now
        ):
            kinds.append(("first_response", ticket.first_response_due))
        if ticket.resolution_due is not None and ticket.resolution_due <= now:
            kinds.append(("resolution", ticket.resolution_due))
        done = {
            e.kind for e in await uow.tickets.timeline(ticket.id) if isinstance(e, TicketActivity)
        }
        for kind, due in kinds:
            if f"sla_breached:{kind}" in done:
                continue
            await _note_activity(uow, ticket, f"sla_breached:{kind}", "system", now, due=due)
            ticket.record(events.SlaBreached(ticket_id=ticket.id, kind=kind))
            announced.append(SlaBreach(ticket, kind, due))
    return announced


# --- agents ----------------------------------------------------------------------------


async def create_agent(
    uow: UnitOfWork,
    *,
    name: str,
    email: str,
    slack_user_id: str | None = None,
    skills: list[str] | None = None,
    languages: list[str] | None = None,
    capacity: int = 5,
    availability: Availability = Availability.AVAILABLE,
) -> Agent:
    name, email = name.strip(), email.strip().lower()
    if not name:
        raise InvalidInput("an agent needs a name")
    if "@" not in email:
        raise InvalidInput("an agent needs a valid email address")
    if capacity < 0:
        raise InvalidInput("capacity cannot be negative")
    if await uow.agents.by_email(email) is not None:
        raise Refused(f"an agent with email {email} already exists")
    return await uow.agents.add(
        Agent(
            name=name,
            email=email,
            slack_user_id=slack_user_id,
            skills=sorted({s.strip().lower() for s in skills or [] if s.strip()}),
            languages=sorted({base_language(code) for code in languages or [] if code.strip()}),
            capacity=capacity,
            availability=Availability(availability),
        )
    )


async def deactivate_agent(
    uow: UnitOfWork, agent_id: int, *, reassign_to: int | None = None, now: datetime | None = None
) -> Agent:
    """Deactivate an agent; refused while they hold open tickets unless those move first."""
    now = now or utcnow()
    agent = await uow.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"there is no agent {agent_id}")
    held = list(await uow.tickets.held_by(agent_id))
    if held and reassign_to is None:
        refs = ", ".join(t.reference for t in held[:5])
        raise Refused(
            f"{agent.name} still holds {len(held)} open tickets ({refs}); reassign them first"
        )
    for ticket in held:
        assert ticket.id is not None and reassign_to is not None
        await assign_ticket(uow, ticket.id, reassign_to, actor="admin", now=now)
    agent.active = False
    agent.availability = Availability.AWAY
    return agent


# --- helpers ---------------------------------------------------------------------------


async def _recorded(uow: UnitOfWork, channel: Channel, external_id: str | None) -> Message | None:
    if external_id is None:
        return None
    return await uow.tickets.message_by_external_id(channel, external_id)


def _check_body(body: str, attachments: list[dict[str, Any]] | None) -> None:
    if not body.strip() and not attachments:
        raise InvalidInput("the message is empty")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"the message is longer than {MAX_BODY} characters")


def _subject_from(description: str) -> str:
    first_line = description.splitlines()[0] if description else ""
    return first_line if len(first_line) <= 80 else first_line[:77].rstrip() + "..."


def _move(ticket: Ticket, target: Status, now: datetime) -> Status:
    return ticket.move_to(target, now)


async def _change(
    uow: UnitOfWork, ticket: Ticket, target: Status, actor: str, now: datetime, *, reason: str = ""
) -> None:
    old = _move(ticket, target, now)
    await _note_activity(
        uow, ticket, "status_changed", actor, now, old=old.value, new=target.value, reason=reason
    )
    assert ticket.id is not None
    ticket.record(
        events.TicketStatusChanged(
            ticket_id=ticket.id, old_status=old.value, new_status=target.value, reason=reason
        )
    )


async def _assign(uow: UnitOfWork, ticket: Ticket, agent: Agent, actor: str, now: datetime) -> None:
    previous = ticket.assignee_id
    ticket.assignee_id = agent.id
    ticket.updated_at = now
    if ticket.status == Status.NEW:
        _move(ticket, Status.OPEN, now)
    await _note_activity(
        uow, ticket, "assigned", actor, now, agent_id=agent.id, agent=agent.name, previous=previous
    )
    assert ticket.id is not None and agent.id is not None
    ticket.record(
        events.TicketAssigned(ticket_id=ticket.id, agent_id=agent.id, previous_agent_id=previous)
    )


async def _active_agent(uow: UnitOfWork, agent_id: int) -> Agent:
    agent = await uow.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"there is no agent {agent_id}")
    if not agent.active:
        raise AgentUnavailable(f"{agent.name} is deactivated")
    return agent


async def _note_activity(
    uow: UnitOfWork, ticket: Ticket, kind: str, actor: str, now: datetime, **detail: Any
) -> None:
    assert ticket.id is not None
    await uow.tickets.add_activity(
        TicketActivity(
            ticket_id=ticket.id,
            kind=kind,
            actor=actor,
            detail={k: (v.value if hasattr(v, "value") else v) for k, v in detail.items()},
            created_at=now,
        )
    )
