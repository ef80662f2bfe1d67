"""The web chat's HTTP and WebSocket protocol, served by a live uvicorn on 127.0.0.1.

The dialog engine here is a small echo (the page's behaviour, not the engine's, is under
test); tests/webchat/test_browser.py drives the real engine in a real browser.
"""

from __future__ import annotations

import asyncio
import json
import socket as socket_lib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from websockets.sync.client import connect

from bots.webchat import (
    Visitors,
    WebChat,
    WebChatChannel,
    WebChatLines,
    visitor_tickets,
    webchat_router,
)
from core.db import tables as t
from core.db.database import Database
from core.db.files import SqlFileStore
from core.db.flags import load_or_create_secret
from dialogs.turn import Choice, Reply, UserSaid
from tests.support.live import LiveServer

DAY = 24 * 3600
SHOP = "https://shop.example"  # a site allowed to embed the chat


class EchoEngine:
    def __init__(self) -> None:
        self.said: list[UserSaid] = []

    async def handle_turn(self, said: UserSaid) -> list[Reply]:
        self.said.append(said)
        if said.attachments:
            return [Reply(f"got {said.attachments[0].name} ({said.attachments[0].size} bytes)")]
        return [Reply(f"echo: {said.choice or said.text}", (Choice("Yes", "yes"),))]


def make_app(url: str, engine: EchoEngine, holder: dict) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(url)
        lines = WebChatLines(db)
        secret = await load_or_create_secret(db, None)
        chat = WebChat(
            db=db, engine=engine, lines=lines,
            visitors=Visitors(URLSafeTimedSerializer(secret), max_age=30 * DAY),
            files=SqlFileStore(db), max_upload_bytes=1000, max_text_chars=50, poll_seconds=None,
            tickets_of=lambda v: visitor_tickets(db, v), allowed_origins=(SHOP,),
        )  # fmt: skip
        holder["secret"] = secret
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
    app = make_app(db.url.render_as_string(hide_password=False), engine, holder)
    with LiveServer(app) as url:
        yield url, engine, holder


def start_session(client: httpx.Client) -> str:
    response = client.post("/chat/api/session")
    assert response.status_code == 200
    return str(response.json()["token"])


def socket(url: str, token: str | None, **options: Any) -> Any:
    """The page's way in: the token in a subprotocol, never in the URL."""
    offered = ["careline", f"careline-visitor.{token}"] if token else None
    return connect(url.replace("http", "ws") + "/chat/ws", subprotocols=offered, **options)


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
    with socket(url, token, open_timeout=5) as ws:
        assert ws.subprotocol == "careline"
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
    url, engine, holder = live
    with httpx.Client(base_url=url) as client:
        start_session(client)
        small = client.post("/chat/api/upload", files={"file": ("a.txt", b"x" * 10, "text/plain")})
        big = client.post("/chat/api/upload", files={"file": ("b.txt", b"x" * 5000, "text/plain")})
        lines = client.get("/chat/api/messages").json()["lines"]
    assert small.status_code == 200
    assert big.status_code == 413
    assert "limit" in big.json()["error"]
    assert [s.attachments[0].name for s in engine.said] == ["a.txt"]
    assert lines[-1]["text"] == "got a.txt (10 bytes)"
    stored = engine.said[0].attachments[0].stored_id
    kept = asyncio.run_coroutine_threadsafe(stored_files(holder["loop_db"]), holder["loop"])
    # Only the small file, its bytes in the database under the visitor who sent it.
    visitor = engine.said[0].user_id
    assert kept.result(5) == [(stored, "a.txt", b"x" * 10, f"webchat:{visitor}")]


async def stored_files(db: Database) -> list[tuple[Any, ...]]:
    f = t.stored_files.c
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(f.id, f.name, f.content, f.owner))
        return [tuple(row) for row in rows]


def test_bad_websocket_frames_get_a_clear_error(live: tuple[str, EchoEngine, dict]) -> None:
    url, engine, _ = live
    with httpx.Client(base_url=url) as client:
        token = start_session(client)
    with socket(url, token) as ws:
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


# --- the visitor token: never in a URL, expires, renews ------------------------------------


def test_websocket_takes_the_token_from_a_subprotocol_never_from_the_url(
    live: tuple[str, EchoEngine, dict],
) -> None:
    url, _, _ = live
    with httpx.Client(base_url=url) as client:
        token = start_session(client)
    # A token in the URL is written to access logs and proxies' logs: it opens nothing.
    with (
        pytest.raises(Exception, match="403"),
        connect(url.replace("http", "ws") + f"/chat/ws?token={token}") as ws,
    ):
        ws.recv(timeout=5)
    with socket(url, token) as ws:
        assert ws.subprotocol == "careline"  # the token is not echoed back


def test_websocket_opened_from_another_site_is_refused(live: tuple[str, EchoEngine, dict]) -> None:
    url, engine, _ = live
    with httpx.Client(base_url=url) as client:
        token = start_session(client)
    with (
        pytest.raises(Exception, match="403"),
        socket(url, token, origin="https://evil.example") as ws,  # type: ignore[arg-type]
    ):
        ws.recv(timeout=5)
    for allowed in (url, SHOP):  # our own page, and a site that embeds the widget
        with socket(url, token, origin=allowed) as ws:
            ws.send(json.dumps({"text": "hi"}))
            assert ws.recv(timeout=5)
    # The first frame may be the lines so far, before the turn ran: wait for both turns.
    deadline = time.monotonic() + 5
    while len(engine.said) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(engine.said) == 2


def issued(secret: str, visitor: str, days_ago: float) -> str:
    """A token as the server would have signed it `days_ago` (itsdangerous's own clock hook)."""

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - days_ago * DAY)

    return str(URLSafeTimedSerializer(secret, signer=Then).dumps(visitor))


def test_visitor_token_expires_after_its_max_age(live: tuple[str, EchoEngine, dict]) -> None:
    url, engine, holder = live
    visitor = "a" * 32
    stale = {"X-Careline-Visitor": issued(holder["secret"], visitor, days_ago=31)}
    with httpx.Client(base_url=url, headers=stale) as client:
        assert client.post("/chat/api/messages", json={"text": "hi"}).status_code == 401
        assert client.get("/chat/api/messages").status_code == 401
        fresh = client.post("/chat/api/session").json()
    with pytest.raises(Exception, match="403"), socket(url, stale["X-Careline-Visitor"]) as ws:
        ws.recv(timeout=5)
    assert fresh["token"] != stale["X-Careline-Visitor"]
    assert fresh["lines"] == []  # a new visitor: the stale token read nothing
    assert engine.said == []


def test_session_renews_a_day_old_token_for_the_same_visitor(
    live: tuple[str, EchoEngine, dict],
) -> None:
    url, engine, holder = live
    with httpx.Client(base_url=url) as client:
        token = start_session(client)
        client.post("/chat/api/messages", json={"text": "hello", "client_id": "c1"})
    old = issued(holder["secret"], engine.said[0].user_id, days_ago=2)
    with httpx.Client(base_url=url, headers={"X-Careline-Visitor": old}) as client:
        renewed = client.post("/chat/api/session")
        # Until its max age the old token still works (another tab may hold it).
        assert client.get("/chat/api/messages").status_code == 200
    assert renewed.json()["token"] != old
    assert renewed.cookies["careline_visitor"] == renewed.json()["token"]
    assert [x["text"] for x in renewed.json()["lines"]] == ["hello", "echo: hello"]
    with httpx.Client(base_url=url, headers={"X-Careline-Visitor": token}) as client:
        assert client.post("/chat/api/session").json()["token"] == token  # fresh: kept


# --- uploads: the visitor first, a cap while streaming, the type from the bytes ------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 40
PDF = b"%PDF-1.7\n" + b"x" * 40
EXE = b"MZ\x90\x00" + b"\0" * 40


def raw_upload(url: str, head: bytes, body: bytes) -> bytes:
    """Send `head` and only the start of a body; return what the server answers meanwhile."""
    host, port = url.removeprefix("http://").split(":")
    with socket_lib.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(head + body)
        return conn.recv(4096)


def test_upload_without_a_session_is_refused_before_its_body_is_read(
    live: tuple[str, EchoEngine, dict],
) -> None:
    url, _, _ = live
    # 50 MB announced, 1 KB sent: the answer must not wait for the rest.
    head = (
        b"POST /chat/api/upload HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 52428800\r\n\r\n"
    )
    answer = raw_upload(url, head, b"--b\r\n" + b"x" * 1024)
    assert answer.startswith(b"HTTP/1.1 401")


def test_upload_over_the_cap_is_refused_while_it_streams(
    live: tuple[str, EchoEngine, dict], tmp_path: Path
) -> None:
    url, engine, _ = live
    with httpx.Client(base_url=url) as client:
        token = start_session(client)

        def chunks() -> Iterator[bytes]:  # chunked: no length to trust, only the bytes
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
            for _ in range(100):
                yield b"x" * 1024

        streamed = client.post(
            "/chat/api/upload",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
    head = (
        b"POST /chat/api/upload HTTP/1.1\r\nHost: x\r\nX-Careline-Visitor: "
        + token.encode()
        + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 52428800\r\n\r\n"
    )
    announced = raw_upload(url, head, b"--b\r\n")
    assert streamed.status_code == 413
    assert announced.startswith(b"HTTP/1.1 413")
    assert engine.said == []
    assert not (tmp_path / "up").exists() or not list((tmp_path / "up").iterdir())


@pytest.mark.parametrize(
    ("name", "data", "declared", "status", "stored"),
    [
        ("photo.png", PNG, "image/png", 200, "image/png"),
        ("scan.pdf", PDF, "application/pdf", 200, "application/pdf"),
        ("photo", PNG, "application/octet-stream", 200, "image/png"),
        ("notes.csv", b"a,b\n1,2\n", "text/csv", 200, "text/plain"),
        ("fake.png", b"just text", "image/png", 415, None),  # not what it claims
        ("page.svg", b"<svg onload=alert(1)>", "image/svg+xml", 415, None),
        ("tool.exe", EXE, "application/octet-stream", 415, None),  # not a kind we take
    ],
    ids=["png", "pdf", "png-untyped", "csv", "text-as-png", "svg", "exe"],
)
def test_upload_type_is_sniffed_from_its_bytes(
    live: tuple[str, EchoEngine, dict],
    name: str,
    data: bytes,
    declared: str,
    status: int,
    stored: str | None,
) -> None:
    url, engine, _ = live
    with httpx.Client(base_url=url) as client:
        start_session(client)
        answer = client.post("/chat/api/upload", files={"file": (name, data, declared)})
    assert answer.status_code == status, answer.text
    if stored is None:
        assert "cannot be sent" in answer.json()["error"]
        assert engine.said == []
    else:
        (attachment,) = engine.said[0].attachments
        assert attachment.mime_type == stored
        assert attachment.kind == ("photo" if stored.startswith("image/") else "document")
