"""A customer's DM delivered 1 to 4 times (overlapping copies, several replicas, a failed
attempt) has exactly one effect, and is answered exactly once: never twice, never not at all.

Real bolt / slack_sdk against the fake Web API, on SQLite and PostgreSQL. The engine stands in
for the dialog engine with its contract: a message id it has seen gets the answer it gave the
first time (as `DialogEngine` does from the conversation's remembered answers), and two
overlapping turns of one message have one effect (the loser of the race sees the winner's).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from bots.slack import Slack, build_slack, slack_router
from core.db import tables as t
from core.db.database import Database
from dialogs.turn import Reply, UserSaid
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_events import SlackEvents
from tests.slack.conftest import SECRET, eventually, slack_settings

DM = "D0CUSTOM1"  # SlackEvents.direct_message's channel


@dataclass
class RememberingEngine:
    """One effect per message id; a message seen before gets its remembered answer."""

    delay: float = 0.0  # how long a turn takes (copies overlap it)
    effects: list[str] = field(default_factory=list)
    answers: dict[str, list[Reply]] = field(default_factory=dict)

    async def handle_turn(self, said: UserSaid) -> list[Reply]:
        if said.message_id in self.answers:
            return self.answers[said.message_id]
        await asyncio.sleep(self.delay)
        if said.message_id in self.answers:  # a racing turn committed first
            return self.answers[said.message_id]
        self.effects.append(said.text)
        self.answers[said.message_id] = [Reply(f"Added to CR-1001: {said.text}")]
        return self.answers[said.message_id]


@dataclass
class Replica:
    """One server process: its own bolt app and Slack client; the database is shared."""

    slack: Slack
    http: httpx.AsyncClient

    async def deliver(self, envelope: dict[str, Any], retry: int = 0) -> int:
        events = SlackEvents(signing_secret=SECRET)
        body = events.body(envelope)
        headers = events.sign(body, retry_num=retry or None)
        return (await self.http.post("/slack/events", content=body, headers=headers)).status_code


@pytest.fixture
def engine() -> RememberingEngine:
    return RememberingEngine()


@pytest.fixture
async def replicas(
    db: Database, fake: FakeSlack, engine: RememberingEngine
) -> AsyncIterator[list[Replica]]:
    """Two replicas of the server on one database (the first alone is a one-process server)."""
    async with contextlib.AsyncExitStack() as stack:
        found = []
        for name in ("one", "two"):
            slack = build_slack(slack_settings(fake), db, engine=engine, interval=0.0, timeout=2)
            app = FastAPI()
            app.include_router(slack_router(slack.inbound))
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test"
                )
            )
            found.append(Replica(slack, http))
        yield found


def answers(fake: FakeSlack) -> list[str]:
    return [str(p["text"]) for p in fake.posted(DM)]


async def settled(db: Database, key: str) -> str | None:
    """The inbox status of a delivery once it is done or parked, else None."""
    i = t.inbox.c
    async with db.engine.connect() as conn:
        status = await conn.scalar(select(i.status).where(i.source == "slack", i.key == key))
    return status if status in ("done", "parked") else None


def key_of(envelope: dict[str, Any]) -> str:
    return f"{envelope['event']['channel']}:{envelope['event']['ts']}"


async def test_overlapping_copies_on_two_replicas_answer_once(
    db: Database, fake: FakeSlack, engine: RememberingEngine, replicas: list[Replica]
) -> None:
    # Slack retried while the first copy was still being worked, and the copies reached
    # different replicas: one of them does the work, the others are acknowledged and dropped.
    engine.delay = 0.3
    envelope = SlackEvents(signing_secret=SECRET).direct_message("note slack 1-1")
    one, two = replicas
    assert await one.deliver(envelope) == 200
    await asyncio.sleep(0.05)
    assert await two.deliver(envelope, retry=1) == 200
    await asyncio.sleep(0.05)
    assert await one.deliver(envelope, retry=2) == 200
    assert await two.deliver(envelope, retry=3) == 200
    assert await eventually(lambda: settled(db, key_of(envelope))) == "done"
    await asyncio.sleep(0.5)  # any second answer would have been posted by now
    assert engine.effects == ["note slack 1-1"]
    assert answers(fake) == ["Added to CR-1001: note slack 1-1"]


async def test_redelivery_after_the_answer_went_out_does_not_answer_again(
    db: Database,
    fake: FakeSlack,
    engine: RememberingEngine,
    replicas: list[Replica],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first attempt posted the answer, then could not record the delivery as done (the
    # database blipped): Slack's retry runs it again and must not post the answer again.
    one = replicas[0]
    inbound = one.slack.inbound
    finish = inbound._finish
    failures = [RuntimeError("the database went away")]

    async def finish_failing_once(key: str | None, error: str | None = None) -> None:
        if failures:
            raise failures.pop()
        await finish(key, error)

    monkeypatch.setattr(inbound, "_finish", finish_failing_once)
    envelope = SlackEvents(signing_secret=SECRET).direct_message("note slack 2-1")
    assert await one.deliver(envelope) == 200
    await eventually(lambda: answers(fake) and not failures)
    await asyncio.sleep(0.1)  # the failed attempt lets go of the delivery
    assert await one.deliver(envelope, retry=1) == 200
    assert await eventually(lambda: settled(db, key_of(envelope))) == "done"
    assert engine.effects == ["note slack 2-1"]
    assert answers(fake) == ["Added to CR-1001: note slack 2-1"]


async def test_redelivery_after_a_failed_answer_still_answers(
    db: Database, fake: FakeSlack, engine: RememberingEngine, replicas: list[Replica]
) -> None:
    # The turn committed but Slack refused the answer (500): no answer yet, so the retry
    # (on another replica) must post it: the engine gives the answer it remembers.
    fake.fail_server_error("chat.postMessage")
    envelope = SlackEvents(signing_secret=SECRET).direct_message("note slack 3-1")
    one, two = replicas
    assert await one.deliver(envelope) == 200
    await eventually(lambda: engine.effects)
    await asyncio.sleep(0.2)  # the failed attempt lets go of the delivery
    assert await settled(db, key_of(envelope)) is None
    assert await two.deliver(envelope, retry=1) == 200
    assert await eventually(lambda: settled(db, key_of(envelope))) == "done"
    assert engine.effects == ["note slack 3-1"]
    assert answers(fake) == ["Added to CR-1001: note slack 3-1"]
