from __future__ import annotations

from datetime import timedelta

import pytest

from core import events
from core.model import (
    Agent,
    Availability,
    Priority,
    Ticket,
    reference_of,
    ticket_id_from_reference,
    utcnow,
)
from core.policy import SlaPolicy, pick_agent


def test_reference_round_trips() -> None:
    assert reference_of(42) == "CR-1042"
    assert ticket_id_from_reference("cr-1042 ") == 42


@pytest.mark.parametrize("text", ["CR-", "CR-abc", "XX-1042", "CR-1000", "1042", ""])
def test_non_references_are_rejected(text: str) -> None:
    assert ticket_id_from_reference(text) is None


def test_events_round_trip_through_payload() -> None:
    ev = events.TicketAssigned(ticket_id=3, agent_id=4, previous_agent_id=None)
    again = events.Event.from_payload(ev.name, ev.to_payload())
    assert again == ev


def test_sla_policy_stamps_due_times_by_priority() -> None:
    policy = SlaPolicy.from_hours({"urgent": (0.5, 2)})
    now = utcnow()
    ticket = Ticket(customer_id=1, subject="s", description="d", category="x",
                    priority=Priority.URGENT)  # fmt: skip
    policy.stamp(ticket, now)
    assert ticket.first_response_due == now + timedelta(minutes=30)
    assert ticket.resolution_due == now + timedelta(hours=2)


def _agent(agent_id: int, **kw: object) -> Agent:
    agent = Agent(name=f"a{agent_id}", email=f"a{agent_id}@x.io", **kw)  # type: ignore[arg-type]
    agent.id = agent_id
    return agent


def test_pick_agent_prefers_least_loaded_with_skill_and_room() -> None:
    ticket = Ticket(customer_id=1, subject="s", description="d", category="billing")
    agents = [
        _agent(1, skills=["billing"], capacity=3),
        _agent(2, skills=["billing"], capacity=3),
        _agent(3, skills=["telecom"], capacity=9),
        _agent(4, skills=["billing"], capacity=3, availability=Availability.AWAY),
        _agent(5, skills=["billing"], capacity=1),
    ]
    load = {1: 2, 2: 1, 3: 0, 4: 0, 5: 1}
    chosen = pick_agent(ticket, agents, load)
    assert chosen is not None
    assert chosen.id == 2


def test_pick_agent_returns_none_when_everyone_is_full() -> None:
    ticket = Ticket(customer_id=1, subject="s", description="d", category="billing")
    assert pick_agent(ticket, [_agent(1, capacity=1)], {1: 1}) is None


def test_pick_agent_gives_a_ticket_to_someone_who_speaks_its_language() -> None:
    spanish = Ticket(customer_id=1, subject="s", description="d", category="billing", language="es")
    english = Ticket(customer_id=1, subject="s", description="d", category="billing")
    agents = [
        _agent(1),  # no languages listed: the default language, English
        _agent(2, languages=["es", "en"]),
        _agent(3, languages=["es"]),
    ]
    load = {1: 0, 2: 2, 3: 1}
    chosen = pick_agent(spanish, agents, load)
    assert chosen is not None and chosen.id == 3  # busier than 1, but speaks Spanish
    chosen = pick_agent(english, agents, load)
    assert chosen is not None and chosen.id == 1  # 3 speaks no English
    full = {1: 0, 2: 5, 3: 5}
    assert pick_agent(spanish, agents, full) is None  # waits for a Spanish speaker


def test_a_ticket_in_a_language_nobody_speaks_goes_to_anyone() -> None:
    german = Ticket(customer_id=1, subject="s", description="d", category="billing", language="de")
    chosen = pick_agent(german, [_agent(1), _agent(2, languages=["es"])], {1: 1, 2: 0})
    assert chosen is not None and chosen.id == 2
