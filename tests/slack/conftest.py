"""The Slack adapter under test: real slack-bolt / slack_sdk against the fake Web API, served by
a small FastAPI app through `slack_router`, with signed requests from `SlackEvents`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from bots.relay import Delivery, Handlers, Relay
from bots.slack import Slack, build_slack, slack_router
from core import services
from core.config import Settings
from core.db import tables as t
from core.db.database import Database
from core.db.files import SqlFileStore
from core.files import FileLinks
from core.model import Agent, Channel, Ticket, utcnow
from dialogs.turn import Choice, Reply, UserSaid
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_events import SlackEvents
from tests.support.customers import register_customer

SECRET = "s3cret-signing"
DESK = "C0DESK"
BILLING = "C0BILL"
AGENT_USER = "U0AGENT01"
LINK_SECRET = "slack-tests-server-secret"


@dataclass
class CollectingEngine:
    """Stands in for the dialog engine: records turns, answers with a question and choices."""

    turns: list[UserSaid] = field(default_factory=list)

    async def handle_turn(self, said: UserSaid) -> list[Reply]:
        self.turns.append(said)
        return [
            Reply(
                "What is it about?",
                (Choice("Billing", "billing"), Choice("Something else", "other")),
            )
        ]


@dataclass
class Desk:
    """Everything a Slack test needs, wired like the server will wire it."""

    db: Database
    fake: FakeSlack
    slack: Slack
    http: httpx.AsyncClient
    events: SlackEvents
    engine: CollectingEngine
    relay: Relay

    async def post(self, path: str, body: bytes, **sign: Any) -> httpx.Response:
        return await self.http.post(path, content=body, headers=self.events.sign(body, **sign))

    async def event(self, envelope: dict[str, Any], **sign: Any) -> httpx.Response:
        return await self.post("/slack/events", self.events.body(envelope), **sign)

    async def action(self, payload: dict[str, Any]) -> httpx.Response:
        return await self.post("/slack/interactions", self.events.interactive_body(payload))

    async def command(self, text: str, user: str = AGENT_USER) -> httpx.Response:
        return await self.post(
            "/slack/commands", self.events.slash_command("/careline", text, user=user)
        )

    async def open_ticket(
        self, category: str = "billing", text: str = "Charged twice", language: str = "en"
    ) -> Ticket:
        async with self.db.uow() as uow:
            customer, identity = await register_customer(
                uow, channel=Channel.TELEGRAM, external_id="42", chat_id="42", display_name="Maria"
            )
            assert customer.id is not None
            customer.email, customer.language = "maria@example.test", language
            ticket = await services.open_ticket(
                uow,
                customer_id=customer.id,
                description=text,
                category=category,
                channel=Channel.TELEGRAM,
                identity_id=identity.id,
                attachments=[{"kind": "photo", "name": "receipt.jpg", "size": 1200}],
            )
            await uow.commit()
        return ticket

    async def add_agent(
        self, name: str = "Ana", email: str = "ana@example.test", slack: str | None = AGENT_USER
    ) -> Agent:
        async with self.db.uow() as uow:
            agent = await services.create_agent(uow, name=name, email=email, slack_user_id=slack)
            await uow.commit()
        return agent

    async def drain(self) -> None:
        """Run the relay until the outbox has nothing due."""
        while await self.relay.drain_once():
            pass

    async def thread_ts(self, ticket_id: int) -> str:
        async with self.db.uow() as uow:
            ts = (
                await uow.session.execute(
                    select(t.slack_threads.c.thread_ts).where(
                        t.slack_threads.c.ticket_id == ticket_id
                    )
                )
            ).scalar_one()
        return str(ts)

    async def outbox_types(self) -> list[str]:
        async with self.db.uow() as uow:
            rows = await uow.session.execute(select(t.outbox.c.event_type).order_by(t.outbox.c.id))
            return [r for (r,) in rows.all()]

    def delivery(self, event: Any, handler: str, event_id: int = 1) -> Delivery:
        return Delivery(event_id, event.name, event.to_payload(), handler, 1, utcnow())


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll until `check()` (sync or async) is truthy; bolt runs listeners after the ack."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


def slack_settings(fake: FakeSlack) -> Settings:
    return Settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=f"{fake.url}/api/",
        slack_support_channel=DESK,
        slack_routing={"billing": BILLING},
    )


@pytest.fixture
async def desk(db: Database, fake: FakeSlack) -> AsyncIterator[Desk]:
    engine = CollectingEngine()
    links = FileLinks(LINK_SECRET, "https://careline.example", 900)
    slack = build_slack(
        slack_settings(fake),
        db,
        SqlFileStore(db),
        lambda: links,
        engine=engine,
        interval=0.0,
        timeout=2,
    )
    app = FastAPI()
    app.include_router(slack_router(slack.inbound))
    handlers = Handlers()
    slack.desk.register(handlers)
    relay = Relay(db, handlers, worker="test-relay")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://careline.test") as http:
        yield Desk(db, fake, slack, http, SlackEvents(signing_secret=SECRET), engine, relay)
