"""What the services share: limits, and the small steps every area takes (record an
activity, move a status, check a body)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core import events
from core.errors import AgentUnavailable, InvalidInput, NotFound
from core.lifecycle import Status
from core.model import (
    Agent,
    Channel,
    Message,
    Ticket,
    TicketActivity,
)
from core.ports import UnitOfWork

MAX_SUBJECT = 200


MAX_BODY = 20_000


DEFAULT_REOPEN_WINDOW = timedelta(days=7)


async def recorded(uow: UnitOfWork, channel: Channel, external_id: str | None) -> Message | None:
    if external_id is None:
        return None
    return await uow.tickets.message_by_external_id(channel, external_id)


def check_body(body: str, attachments: list[dict[str, Any]] | None) -> None:
    if not body.strip() and not attachments:
        raise InvalidInput("the message is empty")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"the message is longer than {MAX_BODY} characters")


def subject_from(description: str) -> str:
    first_line = description.splitlines()[0] if description else ""
    return first_line if len(first_line) <= 80 else first_line[:77].rstrip() + "..."


def move(ticket: Ticket, target: Status, now: datetime) -> Status:
    return ticket.move_to(target, now)


async def change(
    uow: UnitOfWork, ticket: Ticket, target: Status, actor: str, now: datetime, *, reason: str = ""
) -> None:
    old = move(ticket, target, now)
    await note_activity(
        uow, ticket, "status_changed", actor, now, old=old.value, new=target.value, reason=reason
    )
    assert ticket.id is not None
    ticket.record(
        events.TicketStatusChanged(
            ticket_id=ticket.id, old_status=old.value, new_status=target.value, reason=reason
        )
    )


async def assign(uow: UnitOfWork, ticket: Ticket, agent: Agent, actor: str, now: datetime) -> None:
    previous = ticket.assignee_id
    ticket.assignee_id = agent.id
    ticket.updated_at = now
    if ticket.status == Status.NEW:
        move(ticket, Status.OPEN, now)
    await note_activity(
        uow, ticket, "assigned", actor, now, agent_id=agent.id, agent=agent.name, previous=previous
    )
    assert ticket.id is not None and agent.id is not None
    ticket.record(
        events.TicketAssigned(ticket_id=ticket.id, agent_id=agent.id, previous_agent_id=previous)
    )


async def active_agent(uow: UnitOfWork, agent_id: int) -> Agent:
    agent = await uow.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"there is no agent {agent_id}")
    if not agent.active:
        raise AgentUnavailable(f"{agent.name} is deactivated")
    return agent


async def note_activity(
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
