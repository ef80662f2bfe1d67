"""Working a ticket, for the admin API and the console alike: each step checks the caller
against the one rule set (core/access.py), then calls the services. The caller commits."""

from __future__ import annotations

from core import services
from core.access import (
    Caller,
    check_claim,
    check_may_work,
    replying_agent,
    require_admin,
)
from core.lifecycle import Status
from core.model import Channel, Message, Priority, Ticket
from core.policy import SlaPolicy
from core.ports import UnitOfWork


async def claim(uow: UnitOfWork, caller: Caller, ticket_id: int) -> Ticket:
    agent_id = check_claim(caller, await services.get_ticket(uow, ticket_id))
    return await services.assign_ticket(uow, ticket_id, agent_id, actor=caller.actor)


async def assign(
    uow: UnitOfWork, caller: Caller, ticket_id: int, agent_id: int, *, force: bool = False
) -> Ticket:
    require_admin(caller)
    return await services.assign_ticket(uow, ticket_id, agent_id, actor=caller.actor, force=force)


async def unassign(uow: UnitOfWork, caller: Caller, ticket_id: int) -> Ticket:
    require_admin(caller)
    return await services.unassign_ticket(uow, ticket_id, actor=caller.actor)


async def change_status(
    uow: UnitOfWork, caller: Caller, ticket_id: int, status: Status, reason: str = ""
) -> Ticket:
    check_may_work(caller, await services.get_ticket(uow, ticket_id), claimable=False)
    return await services.change_status(uow, ticket_id, status, actor=caller.actor, reason=reason)


async def change_priority(
    uow: UnitOfWork, caller: Caller, ticket_id: int, priority: Priority, sla: SlaPolicy
) -> Ticket:
    """Admins, and agents on their own tickets (as the status)."""
    check_may_work(caller, await services.get_ticket(uow, ticket_id), claimable=False)
    return await services.change_priority(uow, ticket_id, priority, actor=caller.actor, sla=sla)


async def add_note(
    uow: UnitOfWork, caller: Caller, ticket_id: int, body: str, *, channel: Channel
) -> Message:
    """An internal note: never sent to the customer."""
    check_may_work(caller, await services.get_ticket(uow, ticket_id), claimable=True)
    return await services.add_internal_note(
        uow, ticket_id, body, agent_id=caller.agent_id, channel=channel
    )


async def reply(
    uow: UnitOfWork,
    caller: Caller,
    ticket_id: int,
    body: str,
    *,
    channel: Channel,
    agent_id: int | None = None,
) -> Message:
    """An answer to the customer, on the same path as a reply in the ticket's Slack thread:
    the relay delivers it to their channel (and by email, as they chose). The first reply
    claims an unassigned ticket."""
    ticket = await services.get_ticket(uow, ticket_id)
    answering = replying_agent(caller, ticket, agent_id)
    return await services.add_agent_reply(uow, ticket_id, answering, body, channel=channel)
