"""The web chat's rate limits over a live uvicorn on 127.0.0.1: messages (HTTP and
WebSocket) and uploads per visitor, new sessions per address, shared by two replicas on
PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from itsdangerous import URLSafeTimedSerializer
from websockets.sync.client import connect

from bots.webchat import (
    COOKIE,
    HEADER,
    Visitors,
    WebChat,
    WebChatLines,
    visitor_tickets,
    webchat_router,
)
from bots.webchat.limits import WebChatLimits
from core.config import Settings
from core.db.database import Database
from core.db.files import SqlFileStore
from core.db.flags import load_or_create_secret
from tests.support.live import LiveServer
from tests.webchat.test_webchat_api import EchoEngine, start_session

GENEROUS = {
    "webchat_messages_per_minute": 1000,
    "webchat_address_messages_per_minute": 1000,
    "webchat_sessions_per_10_minutes": 1000,
    "webchat_uploads_per_10_minutes": 1000,
}


def make_app(url: str, engine: EchoEngine, **limits: int) -> FastAPI:
    settings = Settings(_env_file=None, **{**GENEROUS, **limits})  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(url)
        secret = await load_or_create_secret(db, None)
        chat = WebChat(
            db=db, engine=engine, lines=WebChatLines(db),
            visitors=Visitors(URLSafeTimedSerializer(secret)), files=SqlFileStore(db),
            max_upload_bytes=1000, max_text_chars=50, poll_seconds=None,
            tickets_of=lambda v: visitor_tickets(db, v),
            limits=WebChatLimits.from_settings(settings, db),
        )  # fmt: skip
        app.include_router(webchat_router(chat))
        yield
        await db.dispose()

    return FastAPI(lifespan=lifespan)


def url_of(db: Database) -> str:
    return db.url.render_as_string(hide_password=False)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Any]:
    """`servers(db, engine, **limits)` starts a web chat on `db` and returns its URL."""
    servers: list[LiveServer] = []

    def start(db: Database, engine: EchoEngine, **limits: int) -> str:
        server = LiveServer(make_app(url_of(db), engine, **limits))
        servers.append(server)
        return server.__enter__()

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def assert_too_fast(response: httpx.Response, words: str) -> None:
    assert response.status_code == 429, response.text
    wait = int(response.headers["retry-after"])
    assert 1 <= wait <= 600
    assert words in response.json()["error"]  # what the page shows (chat.js `say`)
    assert response.json()["retry_after"] == wait


def test_a_visitor_sending_too_fast_gets_429_with_retry_after(servers: Any, db: Database) -> None:
    engine = EchoEngine()
    url = servers(db, engine, webchat_messages_per_minute=3)
    with httpx.Client(base_url=url) as client:
        start_session(client)
        sent = [client.post("/chat/api/messages", json={"text": f"m{i}"}) for i in range(3)]
        assert [r.status_code for r in sent] == [200, 200, 200]
        assert_too_fast(client.post("/chat/api/messages", json={"text": "m3"}), "too fast")
    with httpx.Client(base_url=url) as other:
        start_session(other)
        assert other.post("/chat/api/messages", json={"text": "hi"}).status_code == 200
    assert [s.text for s in engine.said] == ["m0", "m1", "m2", "hi"]


def test_websocket_messages_past_the_limit_get_an_error_and_the_socket_stays(
    servers: Any, db: Database
) -> None:
    engine = EchoEngine()
    url = servers(db, engine, webchat_messages_per_minute=2)
    with httpx.Client(base_url=url) as client:
        token = start_session(client)
    auth = {HEADER: token, "Cookie": f"{COOKIE}={token}"}
    with connect(url.replace("http", "ws") + "/chat/ws", additional_headers=auth) as ws:
        for i in range(3):
            ws.send(json.dumps({"text": f"m{i}"}))
        errors: list[dict] = []
        while not errors:
            frame = json.loads(ws.recv(timeout=5))
            if "error" in frame:
                errors.append(frame)
        assert "too fast" in errors[0]["error"]
        assert errors[0]["retry_after"] >= 1
        ws.send(json.dumps({"text": "still here?"}))
        while "error" not in (frame := json.loads(ws.recv(timeout=5))):
            pass
    assert [s.text for s in engine.said] == ["m0", "m1"]


def test_new_sessions_per_address_are_limited_but_returning_visitors_are_not(
    servers: Any, db: Database
) -> None:
    url = servers(db, EchoEngine(), webchat_sessions_per_10_minutes=2)
    tokens = []
    for _ in range(2):
        with httpx.Client(base_url=url) as client:
            tokens.append(start_session(client))
    with httpx.Client(base_url=url) as client:
        refused = client.post("/chat/api/session")
        assert_too_fast(refused, "Too many new chats")
        assert COOKIE not in refused.cookies
    with httpx.Client(base_url=url, headers={HEADER: tokens[0]}) as returning:
        assert returning.post("/chat/api/session").json()["token"] == tokens[0]


def test_uploads_per_visitor_are_limited(servers: Any, db: Database) -> None:
    engine = EchoEngine()
    url = servers(db, engine, webchat_uploads_per_10_minutes=1)
    with httpx.Client(base_url=url) as client:
        start_session(client)
        first = client.post("/chat/api/upload", files={"file": ("a.txt", b"x", "text/plain")})
        second = client.post("/chat/api/upload", files={"file": ("b.txt", b"y", "text/plain")})
    assert first.status_code == 200
    assert_too_fast(second, "files too fast")
    assert [s.attachments[0].name for s in engine.said] == ["a.txt"]


@pytest.mark.postgres
def test_two_replicas_share_one_visitors_message_limit(servers: Any, pg_db: Database) -> None:
    engine = EchoEngine()
    replicas = [servers(pg_db, engine, webchat_messages_per_minute=4) for _ in range(2)]
    with httpx.Client(base_url=replicas[0]) as client:
        token = start_session(client)
    statuses = []
    for i in range(6):
        with httpx.Client(base_url=replicas[i % 2], headers={HEADER: token}) as client:
            statuses.append(client.post("/chat/api/messages", json={"text": f"m{i}"}).status_code)
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert len(engine.said) == 4
