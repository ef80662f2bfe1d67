"""The real server with the real python-telegram-bot against the fake Bot API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core.config import Settings
from core.db import tables as t
from core.db.database import Database
from dialogs.turn import Choice, Reply, UserSaid
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_updates import TelegramUpdates
from tests.server.support import ServerThread, running

TOKEN = "123456:test-token-AAAA"
SECRET = "s3cret-webhook-token"


class ScriptedEngine:
    """Stands in for the dialog engine: records turns, answers by a small script.

    `fail` makes the next N turns raise; `delay` slows every turn (ordering tests).
    `answered` counts the turns that had their effect (every turn run, `turns`, did not).
    """

    def __init__(self) -> None:
        self.turns: list[UserSaid] = []
        self.answered = 0
        self.fail = 0
        self.delay = 0.0
        self.spans: list[tuple[str, float, float]] = []

    async def handle_turn(self, said: UserSaid) -> list[Reply]:
        replies = await self.script(said)
        self.answered += 1
        return replies

    async def script(self, said: UserSaid) -> list[Reply]:
        started = time.monotonic()
        self.turns.append(said)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.spans.append((said.chat_id, started, time.monotonic()))
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the engine fell over")
        if said.text == "/start":
            return [
                Reply(
                    "Hello <there> & welcome",
                    (Choice("Open a ticket", "new"), Choice("Ticket status", "status")),
                )
            ]
        if said.text == "long":
            return [Reply(("lorem ipsum dolor " * 30 + "\n") * 20)]
        if said.text == "two":
            return [Reply("first"), Reply("second")]
        return [Reply(f"You said: {said.text}")]


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as server:
        yield server


@pytest.fixture
def updates() -> TelegramUpdates:
    return TelegramUpdates()


class RecordingEngine(ScriptedEngine):
    """The script, with the dialog engine's contract for a `recorder`: its `first` runs at
    the start of the turn's transaction and its `last` before the commit, both commit with
    the turn and roll back with a failed one. The server then records a plain message in
    the turn (one commit), like with the real engine. A turn is `answered` once it
    commits."""

    records_in_turn = True

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.db: Database | None = None  # opened in the server's event loop

    async def handle_turn(  # type: ignore[override]
        self, said: UserSaid, *, recorder: Any = None
    ) -> list[Reply]:
        if self.db is None:
            self.db = Database(self.url)
        async with self.db.uow() as uow:
            if recorder is not None:
                await recorder.first(uow)
            replies = await self.script(said)
            if recorder is not None:
                await recorder.last(uow, replies)
            await uow.commit()
        self.answered += 1
        return replies


@pytest.fixture(params=["general"])
def engine(request: pytest.FixtureRequest, db: Database) -> ScriptedEngine:
    """The scripted engine; `in_turn` (indirect parametrisation) records in the turn."""
    if request.param == "in_turn":
        return RecordingEngine(db.url.render_as_string(hide_password=False))
    return ScriptedEngine()


def settings_for(db: Database, fake: FakeTelegram, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db.url.render_as_string(hide_password=False),
        "telegram_bot_token": TOKEN,
        "telegram_webhook_secret": SECRET,
        "telegram_api_base_url": f"{fake.url}/bot",
        "telegram_chat_per_second": 50,
        **overrides,
    }
    return Settings(**values)


StartServer = Callable[..., AbstractContextManager[ServerThread]]


@pytest.fixture
def serve(db: Database, fake: FakeTelegram, engine: ScriptedEngine) -> Iterator[StartServer]:
    """`with serve(**settings) as server:` runs Careline on the test database."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> AbstractContextManager[ServerThread]:
            return running(settings_for(db, fake, **overrides), engine)

        yield start
        stack.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


async def post_update(
    client: httpx.AsyncClient,
    server: ServerThread,
    update: dict[str, Any],
    secret: str | None = SECRET,
) -> httpx.Response:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return await client.post(f"{server.url}/telegram/webhook", json=update, headers=headers)


async def inbox_row(db: Database, update: dict[str, Any]) -> dict[str, Any] | None:
    async with db.sessions() as session:
        row = (
            await session.execute(
                select(t.inbox).where(
                    t.inbox.c.source == "telegram", t.inbox.c.key == str(update["update_id"])
                )
            )
        ).first()
    return None if row is None else dict(row._mapping)


async def run_answer(client: httpx.AsyncClient, fake: FakeTelegram, body: dict[str, Any]) -> None:
    """Do what Telegram does with a method in the webhook's answer: call it."""
    params = {k: v for k, v in body.items() if k != "method"}
    response = await client.post(f"{fake.url}/bot{TOKEN}/{body['method']}", json=params)
    assert response.status_code == 200, response.text
