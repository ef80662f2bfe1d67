"""Hostile calls to the running server's Telegram webhook: 4xx, nothing recorded or logged."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from core.db import tables as t
from core.db.database import Database
from tests.fakes.telegram_updates import TelegramUpdates
from tests.telegram.conftest import SECRET, ScriptedEngine, StartServer, post_update

CUSTOMER_TEXT = "my card number is 4111 1111"  # what must never reach a log line
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}


async def inbox_rows(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(t.inbox))).scalar_one())


def deeply_nested(update: dict[str, object]) -> str:
    update["message"] = "DEEP"  # json.dumps itself cannot write this
    return json.dumps(update).replace('"DEEP"', '{"text":' * 5000 + "0" + "}" * 5000)


async def test_deeply_nested_update_is_refused_and_the_next_one_is_answered(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    db: Database,
) -> None:
    with serve() as server:
        url = f"{server.url}/telegram/webhook"
        refused = await client.post(url, content=deeply_nested(updates.text("x")), headers=HEADERS)
        answered = await post_update(client, server, updates.text("hello"))
    assert refused.status_code == 400
    assert "nested 5001 levels" in refused.text
    assert answered.status_code == 200 and answered.json()["text"] == "You said: hello"
    assert [said.text for said in engine.turns] == ["hello"]
    assert await inbox_rows(db) == 1  # the answered update only


async def _ten_megabytes(pulled: list[int]) -> AsyncIterator[bytes]:
    chunk = (CUSTOMER_TEXT + " ").encode() * 2340  # 64 KiB
    for _ in range(160):
        pulled.append(len(chunk))
        yield chunk


async def test_oversize_update_is_refused_before_it_is_read(
    serve: StartServer,
    client: httpx.AsyncClient,
    engine: ScriptedEngine,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    declared_pulls: list[int] = []
    streamed_pulls: list[int] = []
    with serve() as server:
        url = f"{server.url}/telegram/webhook"
        over_http = await client.post(url, content=_ten_megabytes([]), headers=HEADERS)
        # The same app driven in-process, so that the test sees how much of a body is pulled
        # (over a socket the client sends it all before it reads the answer).
        transport = httpx.ASGITransport(app=server.app)
        async with httpx.AsyncClient(transport=transport, base_url=server.url) as local:
            declared = await local.post(
                "/telegram/webhook",
                content=_ten_megabytes(declared_pulls),
                headers={**HEADERS, "Content-Length": str(160 * 65_520)},
            )
            streamed = await local.post(
                "/telegram/webhook", content=_ten_megabytes(streamed_pulls), headers=HEADERS
            )
    assert [r.status_code for r in (over_http, declared, streamed)] == [413, 413, 413]
    assert declared_pulls == []  # refused on the Content-Length alone
    assert sum(streamed_pulls) <= 1024 * 1024 + 65_520  # stopped at the 1 MiB cap
    assert engine.turns == [] and await inbox_rows(db) == 0
    assert not [r for r in caplog.records if CUSTOMER_TEXT in r.getMessage()]


async def test_refused_calls_leave_no_body_in_the_log(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    update = updates.text(CUSTOMER_TEXT)
    with serve() as server:
        url = f"{server.url}/telegram/webhook"
        answers = [
            await post_update(client, server, update, secret="not-the-secret"),
            await client.post(url, content=deeply_nested(update), headers=HEADERS),
            await client.post(url, content=json.dumps([CUSTOMER_TEXT]), headers=HEADERS),
            await client.post(url, content=b"\xff" + CUSTOMER_TEXT.encode(), headers=HEADERS),
        ]
    assert [a.status_code for a in answers] == [403, 400, 400, 400]
    assert any("refused a webhook call" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if CUSTOMER_TEXT in r.getMessage()]
