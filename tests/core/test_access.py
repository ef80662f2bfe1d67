"""The one rule set of the admin API and the console (core/access.py): both call these
through admin_api/desk.py, so these cases hold for both."""

from __future__ import annotations

import pytest

from core.access import (
    AgentRequired,
    Caller,
    check_claim,
    check_may_work,
    replying_agent,
    require_admin,
    require_agent,
)
from core.errors import Conflict, Forbidden
from core.model import Priority, Ticket

ADMIN = Caller(name="Ada", role="admin", staff_id=1)
GRACE = Caller(name="Grace", role="agent", agent_id=7, key_id=3)
ALAN = Caller(name="Alan", role="agent", agent_id=8, staff_id=2)


def ticket(assignee: int | None) -> Ticket:
    return Ticket(customer_id=1, subject="s", description="d", category="billing",
                  priority=Priority.NORMAL, assignee_id=assignee, id=5)  # fmt: skip


def test_only_admins_do_an_admins_work_and_only_agents_an_agents() -> None:
    require_admin(ADMIN)
    with pytest.raises(Forbidden):
        require_admin(GRACE)
    assert require_agent(GRACE) == 7
    with pytest.raises(Forbidden):
        require_agent(ADMIN)


@pytest.mark.parametrize(
    ("caller", "assignee", "claimable", "allowed"),
    [
        (ADMIN, 8, False, True),
        (GRACE, 7, False, True),
        (GRACE, 8, True, False),
        (GRACE, None, True, True),
        (GRACE, None, False, False),
    ],
)
def test_agents_work_their_own_tickets(
    caller: Caller, assignee: int | None, claimable: bool, allowed: bool
) -> None:
    if allowed:
        check_may_work(caller, ticket(assignee), claimable=claimable)
    else:
        with pytest.raises(Forbidden):
            check_may_work(caller, ticket(assignee), claimable=claimable)


def test_claiming_takes_a_free_ticket_only() -> None:
    assert check_claim(GRACE, ticket(None)) == 7
    assert check_claim(GRACE, ticket(7)) == 7
    with pytest.raises(Conflict):
        check_claim(ALAN, ticket(7))
    with pytest.raises(Forbidden):
        check_claim(ADMIN, ticket(None))


def test_who_answers_the_customer() -> None:
    assert replying_agent(ADMIN, ticket(7), 7) == 7
    with pytest.raises(AgentRequired):
        replying_agent(ADMIN, ticket(7), None)
    assert replying_agent(GRACE, ticket(None), None) == 7
    with pytest.raises(Forbidden):
        replying_agent(GRACE, ticket(None), 8)  # not as someone else
    with pytest.raises(Forbidden):
        replying_agent(ALAN, ticket(7), None)  # not on another agent's ticket
