"""Every allowed and every forbidden status move, on plain objects."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from core.errors import IllegalTransition
from core.lifecycle import TRANSITIONS, Status, check_move
from core.model import Ticket

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

ALLOWED = [(a, b) for a, targets in TRANSITIONS.items() for b in targets]
FORBIDDEN = [
    (a, b) for a, b in itertools.product(Status, Status) if b not in TRANSITIONS[a] and a != b
]


def make_ticket(status: Status) -> Ticket:
    return Ticket(customer_id=1, subject="s", description="d", category="billing", status=status)


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_move_changes_status(current: Status, target: Status) -> None:
    ticket = make_ticket(current)
    assert ticket.move_to(target, NOW) == current
    assert ticket.status == target


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_forbidden_move_raises_and_keeps_status(current: Status, target: Status) -> None:
    ticket = make_ticket(current)
    with pytest.raises(IllegalTransition, match=f"cannot become {target.value}"):
        ticket.move_to(target, NOW)
    assert ticket.status == current


@pytest.mark.parametrize("status", list(Status))
def test_moving_to_the_same_status_is_refused(status: Status) -> None:
    with pytest.raises(IllegalTransition, match="already"):
        check_move(status, status)


def test_closed_is_final() -> None:
    assert TRANSITIONS[Status.CLOSED] == frozenset()


def test_resolving_stamps_resolved_at_and_reopening_clears_it() -> None:
    ticket = make_ticket(Status.OPEN)
    ticket.move_to(Status.RESOLVED, NOW)
    assert ticket.resolved_at == NOW
    ticket.move_to(Status.OPEN, NOW)
    assert ticket.resolved_at is None


def test_closing_stamps_closed_at() -> None:
    ticket = make_ticket(Status.RESOLVED)
    ticket.move_to(Status.CLOSED, NOW)
    assert ticket.closed_at == NOW


def test_forbidden_lists_are_not_empty() -> None:
    # Guards the parametrisation itself: the table must forbid something.
    assert (Status.RESOLVED, Status.WAITING) in FORBIDDEN
    assert {(Status.CLOSED, s) for s in Status if s != Status.CLOSED} <= set(FORBIDDEN)
