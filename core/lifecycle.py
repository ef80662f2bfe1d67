"""The ticket status lifecycle: one transition table, nothing else decides."""

from __future__ import annotations

from enum import StrEnum

from core.errors import IllegalTransition


class Status(StrEnum):
    NEW = "new"  # opened, nobody on it yet
    OPEN = "open"  # assigned to an agent and being worked
    WAITING = "waiting"  # waiting on the customer
    RESOLVED = "resolved"  # answer given; the customer can still reopen it
    CLOSED = "closed"  # final: a later message opens a new ticket


ACTIVE_STATUSES = frozenset({Status.NEW, Status.OPEN, Status.WAITING})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.OPEN, Status.WAITING, Status.RESOLVED, Status.CLOSED}),
    Status.OPEN: frozenset({Status.NEW, Status.WAITING, Status.RESOLVED, Status.CLOSED}),
    Status.WAITING: frozenset({Status.NEW, Status.OPEN, Status.RESOLVED, Status.CLOSED}),
    # Reopening goes back to OPEN (an assignee exists) or NEW (nobody assigned).
    Status.RESOLVED: frozenset({Status.OPEN, Status.NEW, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}


def can_move(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def check_move(current: Status, target: Status) -> None:
    if current == target:
        raise IllegalTransition(f"the ticket is already {current.value}")
    if not can_move(current, target):
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing"
        raise IllegalTransition(
            f"a {current.value} ticket cannot become {target.value} (allowed: {allowed})"
        )
