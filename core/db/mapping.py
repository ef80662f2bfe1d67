"""Imperative mapping of the domain dataclasses onto the tables (the domain stays plain)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import registry, relationship

from core.db import tables as t
from core.model import (
    Agent,
    ChannelIdentity,
    Conversation,
    Customer,
    Message,
    Ticket,
    TicketActivity,
)

mapper_registry = registry(metadata=t.metadata)
_started = False


def start_mappers() -> None:
    """Map once per process; safe to call again."""
    global _started
    if _started:
        return
    _started = True
    mapper_registry.map_imperatively(ChannelIdentity, t.channel_identities)
    mapper_registry.map_imperatively(
        Customer,
        t.customers,
        properties={
            "identities": relationship(
                ChannelIdentity, lazy="selectin", order_by=t.channel_identities.c.id
            )
        },
    )
    mapper_registry.map_imperatively(Agent, t.agents)
    mapper_registry.map_imperatively(Ticket, t.tickets, version_id_col=t.tickets.c.version)
    mapper_registry.map_imperatively(Message, t.messages)
    mapper_registry.map_imperatively(TicketActivity, t.ticket_activities)
    mapper_registry.map_imperatively(
        Conversation, t.conversations, version_id_col=t.conversations.c.version
    )
    for aggregate in (Customer, Agent, Ticket):
        event.listen(aggregate, "load", _fresh_events)


def _fresh_events(target: Any, _context: Any) -> None:
    # Loaded objects skip __init__, so give them an empty event list of their own.
    target.events = []
