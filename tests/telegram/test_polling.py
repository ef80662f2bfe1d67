"""Polling mode (local development): getUpdates against the fake, same processing."""

from __future__ import annotations

import asyncio
import time

from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_updates import TelegramUpdates
from tests.telegram.conftest import ScriptedEngine, StartServer


async def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_polling_answers_updates_and_retries_a_failed_one_in_place(
    serve: StartServer, updates: TelegramUpdates, engine: ScriptedEngine, fake: FakeTelegram
) -> None:
    engine.fail = 1
    with serve(telegram_mode="polling"):
        fake.push_update(updates.text("hello"))
        fake.push_update(updates.text("again"))
        await wait_for(lambda: len(fake.sent_texts(1001)) == 2)
    assert fake.sent_texts(1001) == ["You said: hello", "You said: again"]
    assert [t.text for t in engine.turns] == ["hello", "hello", "again"]
    assert fake.calls_to("deleteWebhook")
    fake.assert_no_violations()
