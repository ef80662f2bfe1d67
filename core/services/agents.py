"""Agents and who works what: creating and deactivating agents, assigning tickets by hand
or to the free agent the policy picks."""

from __future__ import annotations

from datetime import datetime

from core import events
from core.errors import AgentUnavailable, CapacityExceeded, InvalidInput, NotFound, Refused
from core.lifecycle import Status
from core.model import (
    Agent,
    Availability,
    Ticket,
    base_language,
    utcnow,
)
from core.policy import pick_agent
from core.ports import UnitOfWork
from core.services.common import assign, move, note_activity
from core.services.tickets import get_ticket


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
    await assign(uow, ticket, agent, actor, now)
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
        move(ticket, Status.NEW, now)
    ticket.updated_at = now
    await note_activity(uow, ticket, "unassigned", actor, now, agent_id=previous)
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
        await assign(uow, ticket, agent, "auto", now)
        load[agent.id] = load.get(agent.id, 0) + 1
        done.append((ticket, agent))
    return done


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
