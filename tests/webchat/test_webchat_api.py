"""The web chat's HTTP and WebSocket protocol, served by a live uvicorn on 127.0.0.1.

The dialog engine here is a small echo (the page's behaviour, not the engine's, is under
test); tests/webchat/test_browser.py drives the real engine in a real browser.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from itsdangerous import URLSafeSerializer
from websockets.sync.client import connect

from bots.webchat import (
    Visitors,
    WebChat,
    WebChatChannel,
    WebChatLines,
    load_or_create_secret,
    visitor_tickets,
    webchat_router,
)
from core.db.database import Database
from dialogs.turn import Choice, Reply, UserSaid
from tests.support.live import LiveServer


class EchoEngine:
    def __init__(self) -> None:
        self.said: list[UserSaid] = []

    async def handle_turn(self, said: UserSaid) -> list[Reply]:
        self.said.append(said)
        if said.attachments:
            return [Reply(f"got {said.attachments[0].name} ({said.attachments[0].size} bytes)")]
        return [Reply(f"echo: {said.choice or said.text}", (Choice("Yes", "yes"),))]


def make_app(url: str, engine: EchoEngine, uploads: Path, holder: dict) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(url)
        lines = WebChatLines(db)
        secret = await load_or_create_secret(db, None)
        chat = WebChat(
            db=db, engine=engine, lines=lines, visitors=Visitors(URLSafeSerializer(secret)),
            uploads=uploads, max_upload_bytes=1000, max_text_chars=50, poll_seconds=None,
            tickets_of=lambda v: visitor_tickets(db, v),
        )  # fmt: skip
        holder["channel"] = WebChatChannel(lines)
        holder["loop"] = asyncio.get_running_loop()
        holder["loop_db"] = db
        app.include_router(webchat_router(chat))
        yield
        await db.dispose()

    return FastAPI(lifespan=lifespan)


@pytest.fixture
def live(db: Database, tmp_path: Path) -> Iterator[tuple[str, EchoEngine, dict]]:
    engine, holder = EchoEngine(), {}
    app = make_app(db.url.render_as_string(hide_password=False), engine, tmp_path / "up", holder)
    with LiveServer(app) as url:
        yield url, engine, holder


def start_session(client: httpx.Client) -> str:
    response = client.post("/chat/api/session")
    assert response.status_code == 200
    return str(response.json()["token"])


def test_page_is_served_with_its_assets(live: tuple[str, EchoEngine, dict]) -> None:
    url, _, _ = live
    with httpx.Client(base_url=url) as client:
        page = client.get("/chat")
        assert page.status_code == 200
        assert '<html lang="en">' in page.text
        assert 'name="viewport"' in page.text
        assert client.get("/chat/static/chat.js").status_code == 200
        assert "iframe" in client.get("/chat/widget.js").text
        assert client.get("/chat/static/../webchat.py").status_code == 404


def test_http_fallback_sends_and_restores_the_conversation(
    live: tuple[str, EchoEngine, dict],
) -> None:
    url, engine, _ = live
    with httpx.Client(base_url=url) as client:
        token = start_session(client)
        sent = client.post("/chat/api/messages", json={"text": "hello", "client_id": "c1"})
        assert sent.status_code == 200
        lines = client.get("/chat/api/messages", params={"after": 0}).json()["lines"]
    assert [(x["direction"], x["text"]) for x in lines] == [("in", "hello"), ("out", "echo: hello")]
    assert lines[1]["choices"] == [{"label": "Yes", "value": "yes"}]
    assert engine.said[0].message_id == "web:c1"
    # A reload (new client, same token in the header) restores the same conversation.
    with httpx.Client(base_url=url, headers={"X-Careline-Visitor": token}) as again:
        restored = again.post("/chat/api/session").json()
    assert [x["text"] for x in restored["lines"]] == ["hello", "echo: hello"]
    assert restored["token"] == token


def test_requests_without_a_valid_session_are_refused(live: tuple[str, EchoEngine, dict]) -> None:
    url, engine, _ = live
    with httpx.Client(base_url=url, headers={"X-Careline-Visitor": "forged.token"}) as client:
        assert client.post("/chat/api/messages", json={"text": "hi"}).status_code == 401
        assert client.get("/chat/api/messages").status_code == 401
    assert engine.said == []


def test_websocket_carries_turns_and_pushes_agent_replies_live(
    live: tuple[str, EchoEngine, dict],
) -> None:
    url, engine, holder = live
    with httpx.Client(base_url=url) as client:
        token = start_session(client)
    ws_url = url.replace("http", "ws") + f"/chat/ws?token={token}"
    with connect(ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"text": "hi there", "client_id": "a"}))
        seen: list[str] = []
        while "echo: hi there" not in seen:
            seen += [x["text"] for x in json.loads(ws.recv(timeout=5))["lines"]]
        # The relay delivers an agent reply through the channel; it arrives on the socket.
        channel: WebChatChannel = holder["channel"]
        visitor = engine.said[-1].user_id
        provider_id = asyncio.run_coroutine_threadsafe(
            channel.send(visitor, Reply("Hi, I'm Grace from support")), holder["loop"]
        ).result(5)
        assert provider_id.isdigit()
        while "Hi, I'm Grace from support" not in seen:
            seen += [x["text"] for x in json.loads(ws.recv(timeout=5))["lines"]]


def test_upload_is_size_limited_and_reaches_the_engine(
    live: tuple[str, EchoEngine, dict], tmp_path: Path
) -> None:
    url, engine, _ = live
    with httpx.Client(base_url=url) as client:
        start_session(client)
        small = client.post("/chat/api/upload", files={"file": ("a.txt", b"x" * 10, "text/plain")})
        big = client.post("/chat/api/upload", files={"file": ("b.bin", b"x" * 5000, "x/y")})
        lines = client.get("/chat/api/messages").json()["lines"]
    assert small.status_code == 200
    assert big.status_code == 413
    assert "limit" in big.json()["error"]
    assert [s.attachments[0].name for s in engine.said] == ["a.txt"]
    assert engine.said[0].attachments[0].file_id.startswith("webchat:")
    assert lines[-1]["text"] == "got a.txt (10 bytes)"
    assert len(list((tmp_path / "up").iterdir())) == 1  # the oversize file was not kept


def test_bad_websocket_frames_get_a_clear_error(live: tuple[str, EchoEngine, dict]) -> None:
    url, engine, _ = live
    with httpx.Client(base_url=url) as client:
        token = start_session(client)
    with connect(url.replace("http", "ws") + f"/chat/ws?token={token}") as ws:
        ws.send("not json")
        assert "error" in json.loads(ws.recv(timeout=5))
    assert engine.said == []


def test_websocket_without_a_session_is_closed(live: tuple[str, EchoEngine, dict]) -> None:
    url, _, _ = live
    with (
        pytest.raises(Exception, match="403"),
        connect(url.replace("http", "ws") + "/chat/ws") as ws,
    ):
        ws.recv(timeout=5)
