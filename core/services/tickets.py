"""Tickets: opening, messages (customer, agent, note, bot), status, priority, a person
asked for, ratings, and closing what stayed resolved."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core import events
from core.errors import InvalidInput, NotFound, Refused
from core.lifecycle import Status
from core.model import (
    Author,
    Channel,
    Message,
    Priority,
    Ticket,
    base_language,
    utcnow,
)
from core.policy import SlaPolicy
from core.ports import UnitOfWork
from core.services.common import (
    DEFAULT_REOPEN_WINDOW,
    MAX_BODY,
    MAX_SUBJECT,
    active_agent,
    assign,
    change,
    check_body,
    note_activity,
    recorded,
    subject_from,
)
from core.services.customers import get_customer


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
        subject=(subject.strip() or subject_from(description))[:MAX_SUBJECT],
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
    if (seen := await recorded(uow, channel, external_id)) is not None:
        return seen  # a redelivery of a platform message
    check_body(body, attachments)
    ticket = await get_ticket(uow, ticket_id)
    if ticket.status == Status.CLOSED:
        raise Refused(f"{ticket.reference} is closed; open a new ticket instead")
    if ticket.status == Status.RESOLVED:
        if ticket.resolved_at is not None and now - ticket.resolved_at > reopen_window:
            raise Refused(f"{ticket.reference} was resolved too long ago to reopen")
        await reopen_ticket(uow, ticket_id, actor="customer", now=now)
    elif ticket.status == Status.WAITING:
        target = Status.OPEN if ticket.assignee_id is not None else Status.NEW
        await change(uow, ticket, target, "customer", now, reason="customer replied")
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
    if (seen := await recorded(uow, channel, external_id)) is not None:
        return seen  # a redelivery of a platform message
    check_body(body, attachments)
    ticket = await get_ticket(uow, ticket_id)
    agent = await active_agent(uow, agent_id)
    if ticket.status == Status.CLOSED:
        raise Refused(f"{ticket.reference} is closed; the customer can no longer be answered")
    if ticket.assignee_id is None:
        await assign(uow, ticket, agent, f"agent:{agent_id}", now)
    elif ticket.status in (Status.NEW, Status.WAITING):
        await change(uow, ticket, Status.OPEN, f"agent:{agent_id}", now)
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
    if (seen := await recorded(uow, channel, external_id)) is not None:
        return seen  # a redelivery of a platform message
    check_body(body, None)
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
    await change(uow, ticket, target, actor, now, reason=reason)
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
    await change(uow, ticket, target, actor, now, reason="reopened")
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
    await note_activity(uow, ticket, "priority_changed", actor, now, old=old.value, new=priority)
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
        await note_activity(uow, ticket, "human_requested", "customer", now)
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
    await note_activity(uow, ticket, "rated", "customer", now, score=score)
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
        await change(uow, ticket, Status.CLOSED, "system", now, reason="auto-closed")
        closed.append(ticket)
    return closed
