"""Pure policies the services apply: SLA targets and auto-assignment choice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.model import Agent, Availability, Priority, Ticket


@dataclass(frozen=True, slots=True)
class SlaTarget:
    first_response: timedelta
    resolution: timedelta


def _default_targets() -> dict[Priority, SlaTarget]:
    return {
        Priority.URGENT: SlaTarget(timedelta(hours=1), timedelta(hours=4)),
        Priority.HIGH: SlaTarget(timedelta(hours=4), timedelta(hours=24)),
        Priority.NORMAL: SlaTarget(timedelta(hours=8), timedelta(hours=72)),
        Priority.LOW: SlaTarget(timedelta(hours=24), timedelta(hours=120)),
    }


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    targets: Mapping[Priority, SlaTarget] = field(default_factory=_default_targets)

    @classmethod
    def from_hours(cls, spec: Mapping[str, tuple[float, float]]) -> SlaPolicy:
        """Build from `{"urgent": (first_response_hours, resolution_hours), ...}`."""
        targets = _default_targets()
        for name, (first, resolve) in spec.items():
            targets[Priority(name)] = SlaTarget(timedelta(hours=first), timedelta(hours=resolve))
        return cls(targets)

    def stamp(self, ticket: Ticket, start: datetime) -> None:
        target = self.targets[ticket.priority]
        ticket.first_response_due = start + target.first_response
        ticket.resolution_due = start + target.resolution


def pick_agent(ticket: Ticket, agents: Iterable[Agent], load: Mapping[int, int]) -> Agent | None:
    """The least-loaded available agent with the ticket's skill and free capacity, among
    those who speak the customer's language. When some active agent speaks it, the ticket
    waits for one of them; when nobody does, anyone may take it."""
    active = [a for a in agents if a.active]
    if any(a.speaks(ticket.language) for a in active):
        active = [a for a in active if a.speaks(ticket.language)]
    candidates = [
        a
        for a in active
        if a.availability == Availability.AVAILABLE
        and a.can_take(ticket.category)
        and a.id is not None
        and load.get(a.id, 0) < a.capacity
    ]
    if not candidates:
        return None
    # Ties go to the agent with the most headroom, then the longest-standing agent.
    return min(
        candidates,
        key=lambda a: (load.get(a.id or 0, 0), -(a.capacity - load.get(a.id or 0, 0)), a.id),
    )
