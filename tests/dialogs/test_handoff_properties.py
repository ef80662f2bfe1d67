"""The handoff as a checked state machine: random interleavings of what a customer writes and
presses (current, doubled and stale buttons), agent replies, assignment and resolution, on the
real engine over SQLite with the relay's customer notices, and the invariants that must hold
after every step.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from core import services
from core.db import tables as t
from core.db.database import Database
from core.lifecycle import ACTIVE_STATUSES
from dialogs.policy import ALWAYS_OPEN
from tests.dialogs.conftest import Customer, Press, make_engine
from tests.dialogs.test_handoff import relay_to_chat
from tests.relay.support import drain

TEXTS = (
    "hello",
    "when are you open?",
    "my card was charged twice",
    "I need a person",
    "blah blah",
    "I want to complain",
    "yes",
    "no",
    "/human",
    "/status",
)
ASKS_FOR_A_PERSON = frozenset({"I need a person", "/human"})
#: The first notice of a handoff (the catalogue's human.queued, queued_new and with_agent),
#: and the relay's queue notices, which must never come on top of it.
HANDOFF = re.compile(r"passed (CR-\d+)|opened (CR-\d+) for you|already on (CR-\d+) and has been")
RELAY_QUEUE = re.compile(r"in the queue|already on")
RECEIPT = re.compile(r"^Added to CR-\d+\. Your agent will reply here\.$")
STALE = "belongs to an earlier message"


class Handoff(RuleBasedStateMachine):
    template: Path  # the migrated SQLite database, copied for each example

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="handoff-"))
        shutil.copyfile(self.template, self.folder / "careline.db")
        self.db = Database(f"sqlite+aiosqlite:///{self.folder / 'careline.db'}")
        self.relay, self.chat = relay_to_chat(self.db, self.folder)
        self.customer = Customer(make_engine(self.db))
        self.agent_id = self.run(self._agent())
        self.shown: list[tuple[str, str]] = []  # every (label, value) ever offered
        self.handoffs: dict[str, int] = {}  # reference -> handoff notices the customer read
        self.last_pressed: tuple[str, str] | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.db.dispose())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    async def _agent(self) -> int:
        async with self.db.uow() as uow:
            agent = await services.create_agent(uow, name="Bob Lee", email="bob@example.com")
            await uow.commit()
        assert agent.id is not None
        return agent.id

    # --- reading the facts --------------------------------------------------------------

    async def _facts(self) -> dict[str, Any]:
        async with self.db.engine.connect() as conn:
            slots = (await conn.execute(select(t.conversations.c.slots))).scalar()
            tickets = (
                await conn.execute(
                    select(t.tickets.c.id, t.tickets.c.status, t.tickets.c.assignee_id)
                )
            ).all()
            counts = {
                name: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                for name, table in (("messages", t.messages), ("outbox", t.outbox))
            }
            human = (
                await conn.execute(select(t.tickets.c.id).where(t.tickets.c.human_requested))
            ).scalars()
            return {
                "offered": [tuple(o) for o in (slots or {}).get("offered", [])],
                "with": (slots or {}).get("ticket_id"),
                "tickets": {row.id: row for row in tickets},
                "human_requested": {f"CR-{1000 + i}" for i in human},
                **counts,
            }

    def facts(self) -> dict[str, Any]:
        return dict(self.run(self._facts()))

    def held_by_a_person(self, facts: dict[str, Any]) -> int | None:
        ticket = facts["tickets"].get(facts["with"])
        if ticket is None or ticket.assignee_id is None:
            return None
        return int(ticket.id) if ticket.status in ACTIVE_STATUSES else None

    def active_ticket(self) -> int | None:
        facts = self.facts()
        active = [i for i, row in facts["tickets"].items() if row.status in ACTIVE_STATUSES]
        return max(active) if active else None

    # --- the customer ---------------------------------------------------------------------

    def say(self, what: str | Press) -> str:
        before = self.facts()
        answer = self.run(self.customer.say(what))
        self.run(drain(self.relay))
        after = self.facts()
        for reply in self.customer.last:
            self.shown.extend((c.label, c.value) for c in reply.choices)
        self.check_turn(what, before, after, answer)
        return answer

    def check_turn(
        self, what: str | Press, before: dict[str, Any], after: dict[str, Any], answer: str
    ) -> None:
        # One ticket at most per turn: one confirmation, or one request for a person.
        assert len(after["tickets"]) - len(before["tickets"]) <= 1
        for match in HANDOFF.finditer(answer):
            reference = next(g for g in match.groups() if g)
            self.handoffs[reference] = self.handoffs.get(reference, 0) + 1
            # A handoff only ever answers a request for a person, never resolution or a FAQ.
            pressed = isinstance(what, Press) and what.value == "/human"
            assert pressed or what in ASKS_FOR_A_PERSON, what
        held = self.held_by_a_person(before)
        if held is not None and isinstance(what, str) and not what.startswith("/"):
            # A person holds the ticket: the bot only confirms receipt, and passes it on.
            assert RECEIPT.match(answer), answer
            assert after["messages"] == before["messages"] + 1

    def press(self, label: str, value: str) -> None:
        before = self.facts()
        open_now = (label, value) in before["offered"] or value.startswith(ALWAYS_OPEN)
        answer = self.say(Press(value, label))
        if not open_now:
            # A stale or doubled press does nothing at all, and says so.
            after = self.facts()
            assert STALE in answer, answer
            for fact in ("messages", "outbox", "tickets", "with"):
                assert after[fact] == before[fact], fact

    @rule(text=st.sampled_from(TEXTS))
    def customer_writes(self, text: str) -> None:
        self.say(text)

    @rule(text=st.sampled_from(sorted(ASKS_FOR_A_PERSON)))
    def customer_asks_for_a_person(self, text: str) -> None:
        self.say(text)

    @rule(data=st.data())
    def customer_presses_a_current_button(self, data: st.DataObject) -> None:
        offered = self.facts()["offered"]
        if offered:
            label, value = data.draw(st.sampled_from(offered))
            self.press(label, value)
            self.last_pressed = (label, value)

    @precondition(lambda self: self.last_pressed is not None)
    @rule()
    def customer_presses_the_same_button_again(self) -> None:
        assert self.last_pressed is not None
        self.press(*self.last_pressed)

    @precondition(lambda self: bool(self.shown))
    @rule(data=st.data())
    def customer_presses_an_old_button(self, data: st.DataObject) -> None:
        self.press(*data.draw(st.sampled_from(self.shown)))

    # --- the agents -------------------------------------------------------------------------

    async def _desk(self, what: str, ticket_id: int) -> None:
        async with self.db.uow() as uow:
            if what == "assign":
                await services.assign_ticket(uow, ticket_id, self.agent_id)
            elif what == "reply":
                await services.add_agent_reply(uow, ticket_id, self.agent_id, "Looking into it.")
            else:
                await services.resolve_ticket(uow, ticket_id)
            await uow.commit()

    def desk(self, what: str) -> None:
        ticket_id = self.active_ticket()
        if ticket_id is not None:
            self.run(self._desk(what, ticket_id))
            self.run(drain(self.relay))

    @rule()
    def agent_takes_the_ticket(self) -> None:
        self.desk("assign")

    @rule()
    def agent_replies(self) -> None:
        self.desk("reply")

    @rule()
    def agent_resolves_the_ticket(self) -> None:
        self.desk("resolve")

    # --- after every step -------------------------------------------------------------------

    @invariant()
    def each_handoff_is_told_exactly_once(self) -> None:
        # The turn's notice is the only one: the relay never repeats it in chat.
        assert not any(RELAY_QUEUE.search(text) for text in self.chat.texts("chat-u1"))
        assert all(n == 1 for n in self.handoffs.values()), self.handoffs
        assert set(self.handoffs) == self.facts()["human_requested"]


def test_the_handoff_holds_its_invariants(request: pytest.FixtureRequest) -> None:
    Handoff.template = request.getfixturevalue("_sqlite_template")
    run = settings(
        max_examples=30,
        stateful_step_count=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    run_state_machine_as_test(Handoff, settings=run)
