"""SLA: the tickets past their first-response or resolution target, announced once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core import events
from core.model import (
    Ticket,
    TicketActivity,
    utcnow,
)
from core.ports import UnitOfWork
from core.services.common import note_activity


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
            await note_activity(uow, ticket, f"sla_breached:{kind}", "system", now, due=due)
            ticket.record(events.SlaBreached(ticket_id=ticket.id, kind=kind))
            announced.append(SlaBreach(ticket, kind, due))
    return announced
