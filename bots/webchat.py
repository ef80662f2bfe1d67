"""The built-in web chat: a page at /chat talking to the dialog engine over a WebSocket.

The visitor's identity is a random id in a signed token that expires and is renewed (`Visitors`):
a cookie, and a copy the page keeps so an embedded iframe works where third-party cookies are
blocked. It is never in a URL: the WebSocket takes it from a subprotocol or the cookie. Every line
of the conversation is stored in `webchat_messages`, so a reload restores it and any replica
can serve a reconnecting visitor. Agent replies and notices arrive through the relay's
`WebChatChannel.send`, which stores the line and wakes the visitor's socket; other replicas
notice new lines by a short poll (PostgreSQL only: SQLite runs a single process).

Without a WebSocket the page falls back to plain HTTP: POST to send, GET to poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import (
    APIRouter,
    HTTPException,
    Request,
    Response,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, Field

from admin_api.headers import page_policy
from bots.channels import OutgoingFile, PermanentFailure, PlugBuild, PlugStart, TurnEngine
from bots.notices import AgentReply
from bots.webchat_limits import WebChatLimits
from bots.webchat_uploads import Refused, read_upload
from core import services
from core.db.database import Database
from core.db.webchat import add_line, lines_since
from core.files import human_size
from core.model import Channel, utcnow
from core.ports import FileStore
from dialogs.catalogue import Catalogue, load_catalogue
from dialogs.turn import Attachment, Reply, UserSaid

log = logging.getLogger("careline.webchat")

STATIC = Path(__file__).with_name("static")
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
COOKIE = "careline_visitor"
HEADER = "x-careline-visitor"
# A browser cannot set headers on a WebSocket, and an embedded page may get no cookie, so the
# page offers two subprotocols: ours, which the server picks, and one carrying the token.
PROTOCOL = "careline"
VISITOR_PROTOCOL = "careline-visitor."  # + the token
HISTORY_LIMIT = 200
# The page says this when it opens on an empty conversation; the greeting answers it, and the
# visitor never typed it, so it is not shown as their line.
START = "/start"
EXPORT_ROUTE = "/chat/api/export"
EXPORT_LINK = "Download your data (JSON file)"


# --- storage ---------------------------------------------------------------------------


def reply_body(reply: Reply, **extra: Any) -> dict[str, Any]:
    if isinstance(reply, AgentReply):  # shown as a person's bubble under their name
        return {"text": reply.body, "choices": [], "agent": {"name": reply.agent}, **extra}
    if is_data_export(reply.text):  # the file is built fresh when the visitor downloads it
        return {"text": "", "choices": [], "download": {"label": EXPORT_LINK, "href": EXPORT_ROUTE}}
    return {
        "text": reply.text,
        "choices": [{"label": c.label, "value": c.value} for c in reply.choices],
        **extra,
    }


def is_data_export(text: str) -> bool:
    """The engine's "Export my data" answer: the JSON document after its readable summary."""
    if not text.startswith("{"):
        return False
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and {"identities", "tickets"} <= data.keys()


class WebChatLines:
    """The stored conversation of each visitor, and in-process wake-ups for new lines."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    async def add(self, visitor_id: str, direction: str, body: dict[str, Any]) -> int:
        line_id = await add_line(self.db, visitor_id, direction, body)
        for event in self._waiters.get(visitor_id, ()):
            event.set()
        return line_id

    async def since(self, visitor_id: str, after: int, limit: int = HISTORY_LIMIT) -> list[dict]:
        return await lines_since(self.db, visitor_id, after, limit)

    @contextlib.contextmanager
    def waiter(self, visitor_id: str) -> Any:
        event = asyncio.Event()
        self._waiters[visitor_id].add(event)
        try:
            yield event
        finally:
            self._waiters[visitor_id].discard(event)
            if not self._waiters[visitor_id]:
                self._waiters.pop(visitor_id, None)


class WebChatChannel:
    """The relay's way into the web chat: store the line; the visitor's socket picks it up."""

    channel = Channel.WEBCHAT

    def __init__(self, lines: WebChatLines) -> None:
        self.lines = lines

    async def send(self, chat_id: str, reply: Reply) -> str:
        return str(await self.lines.add(chat_id, "out", reply_body(reply)))

    async def send_file(self, chat_id: str, file: OutgoingFile) -> str:
        """A download link in the agent's bubble; the signed path needs no visitor token, so
        it works in the page and in a framed widget alike."""
        if file.link is None:
            raise PermanentFailure("the web chat needs a link to offer a file")
        label = f"{file.name} ({human_size(len(file.content))})"
        line = {
            "text": "",
            "choices": [],
            "agent": {"name": file.sender},
            "download": {"label": label, "href": file.link, "name": file.name},
        }
        return str(await self.lines.add(chat_id, "out", line))


# --- visitor identity ------------------------------------------------------------------


@dataclass(frozen=True)
class Visitors:
    """Signed visitor tokens that carry their issue time: each works for `max_age` seconds,
    and the page's session call swaps one older than a day for a fresh one, so only a
    visitor idle for the whole `max_age` starts over (and a token copied once goes stale)."""

    serializer: URLSafeTimedSerializer
    max_age: float = 30 * 24 * 3600

    @property
    def renew_after(self) -> float:
        return min(24 * 3600, self.max_age / 2)

    def new_token(self) -> tuple[str, str]:
        visitor_id = uuid.uuid4().hex
        return visitor_id, self.token_for(visitor_id)

    def token_for(self, visitor_id: str) -> str:
        return str(self.serializer.dumps(visitor_id))

    def visitor_of(self, token: str | None) -> str | None:
        found = self._read(token)
        return found[0] if found else None

    def session(self, token: str | None) -> tuple[str, str] | None:
        """The visitor and the token to use from now on (renewed once it is a day old)."""
        found = self._read(token)
        if found is None or token is None:
            return None
        visitor, age = found
        return visitor, self.token_for(visitor) if age > self.renew_after else token

    def _read(self, token: str | None) -> tuple[str, float] | None:
        if not token:
            return None
        try:  # an expired token raises SignatureExpired, a BadSignature
            value, issued = self.serializer.loads(
                token, max_age=int(self.max_age), return_timestamp=True
            )
        except BadSignature:
            return None
        if not (isinstance(value, str) and len(value) == 32):
            return None
        return value, (utcnow() - issued).total_seconds()


def allowed_origins(configured: list[str], public_url: str | None) -> tuple[str, ...]:
    """The sites that may embed the chat and open its socket, as browsers write an Origin."""
    found = [*configured, *([public_url] if public_url else [])]
    return tuple(dict.fromkeys(_origin(url) for url in found))


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


# --- routes ----------------------------------------------------------------------------


class SendBody(BaseModel):
    text: str = Field("", max_length=20_000)
    choice: str | None = Field(None, max_length=200)
    client_id: str | None = Field(None, max_length=64, description="dedupes resends")
    # The browser's language (navigator.language): where a new customer starts. A tag we
    # cannot read is ignored rather than refused: the message itself must not be lost.
    language: str | None = Field(None, max_length=35)


@dataclass
class WebChat:
    db: Database
    engine: TurnEngine | None  # set once the server has started it
    lines: WebChatLines
    visitors: Visitors | None  # set once the signing secret is loaded
    files: FileStore
    max_upload_bytes: int
    max_text_chars: int
    poll_seconds: float | None  # cross-replica poll; None when one process holds the DB
    tickets_of: Callable[[str], Awaitable[list[dict[str, Any]]]]
    limits: WebChatLimits = field(default_factory=WebChatLimits.off)
    allowed_origins: tuple[str, ...] = ()  # besides our own: the sites that embed the chat

    async def turn(
        self, visitor_id: str, body: SendBody, attachment: Attachment | None = None
    ) -> None:
        text = body.text.strip()
        if len(text) > self.max_text_chars:
            # Keep the line visible but hand the engine what it will refuse politely.
            text = text[: self.max_text_chars + 1]
        shown: dict[str, Any] = {"text": text, "choice": body.choice}
        if attachment is not None:
            shown["attachment"] = {"name": attachment.name, "size": attachment.size}
        if text != START or body.choice or attachment:
            await self.lines.add(visitor_id, "in", shown)
        said = UserSaid(
            channel=Channel.WEBCHAT,
            user_id=visitor_id,
            chat_id=visitor_id,
            text=text,
            message_id=f"web:{body.client_id}" if body.client_id else None,
            display_name="",
            attachments=(attachment,) if attachment else (),
            choice=body.choice,
            language=body.language
            if body.language and LANGUAGE_TAG.fullmatch(body.language)
            else "en",
        )
        if self.engine is None:
            raise HTTPException(503, "the chat is starting; try again in a moment")
        for reply in await self.engine.handle_turn(said):
            await self.lines.add(visitor_id, "out", reply_body(reply))


@functools.cache
def shipped_catalogue() -> Catalogue:
    return load_catalogue()


class ChatPages:
    """The chat page in each language of the catalogue (`webchat.*`), built once each: its
    words in the HTML, and those chat.js shows as JSON in `data-texts`."""

    def __init__(self, template: Path, catalogue: Catalogue) -> None:
        self.template = template.read_text(encoding="utf-8")
        self.catalogue = catalogue
        self.keys = sorted(
            key.removeprefix("webchat.")
            for key in catalogue.keys(catalogue.default)
            if key.startswith("webchat.")
        )
        self._built: dict[str, str] = {}

    def page(self, accept_language: str | None) -> str:
        language = self.language(accept_language)
        if language not in self._built:
            texts = {key: self.catalogue.text(f"webchat.{key}", language) for key in self.keys}
            html = self.template.replace("{{lang}}", language)
            html = html.replace("{{texts}}", escape(json.dumps(texts, ensure_ascii=False)))
            for key, text in texts.items():
                html = html.replace("{{" + key + "}}", escape(text))
            self._built[language] = html
        return self._built[language]

    def language(self, accept_language: str | None) -> str:
        """The visitor's preferred language we speak (RFC 9110 weights), else the default."""
        ranked: list[tuple[float, int, str]] = []
        for position, part in enumerate((accept_language or "").split(",")[:20]):
            tag, _, params = part.strip().partition(";")
            weight = 1.0
            if params.strip().startswith("q="):
                try:
                    weight = float(params.strip()[2:])
                except ValueError:
                    continue
            if tag and weight > 0:
                ranked.append((-weight, position, tag))
        for _, _, tag in sorted(ranked):
            code = tag.strip().lower().split("-")[0]
            if code in self.catalogue.languages:
                return code
        return self.catalogue.default


def webchat_router(chat: WebChat) -> APIRouter:
    router = APIRouter(prefix="/chat", include_in_schema=False)
    pages = ChatPages(STATIC / "chat.html", shipped_catalogue())
    # The widget frames this page on the allowed sites; nobody else may (clickjacking).
    page_headers = {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": page_policy(
            inline=False, frame_ancestors=" ".join(["'self'", *chat.allowed_origins])
        ),
    }

    def visitors() -> Visitors:
        if chat.visitors is None:
            raise HTTPException(503, "the chat is starting; try again in a moment")
        return chat.visitors

    def visitor_or_401(request: Request) -> str:
        token = request.headers.get(HEADER) or request.cookies.get(COOKIE)
        visitor = visitors().visitor_of(token)
        if visitor is None:
            raise HTTPException(401, "start a chat session first: POST /chat/api/session")
        return visitor

    def origin_allowed(ws: WebSocket) -> bool:
        origin = ws.headers.get("origin")
        if origin is None:  # not a browser: hijacking a socket needs the victim's browser
            return True
        own = urlsplit(origin).netloc == ws.headers.get("host")
        return own or origin.lower() in chat.allowed_origins

    @router.get("")
    async def chat_page(request: Request) -> HTMLResponse:
        page = pages.page(request.headers.get("accept-language"))
        return HTMLResponse(page, headers={**page_headers, "Vary": "Accept-Language"})

    @router.get("/static/{name}")
    async def static(name: str) -> FileResponse:
        if name not in {"chat.js", "chat.css", "widget.js"}:
            raise HTTPException(404, "no such file")
        return FileResponse(STATIC / name, headers={"Cache-Control": "max-age=300"})

    @router.get("/widget.js")
    async def widget() -> FileResponse:
        return FileResponse(STATIC / "widget.js", media_type="text/javascript")

    @router.post("/api/session")
    async def session(request: Request, response: Response) -> dict[str, Any]:
        known = visitors().session(request.headers.get(HEADER) or request.cookies.get(COOKIE))
        if known is None:
            if refused := await chat.limits.new_session(request):
                return refused.response()  # type: ignore[return-value]
            known = visitors().new_token()
        visitor, token = known
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="lax",
            max_age=int(visitors().max_age),
            secure=request.url.scheme == "https",
        )
        return {
            "token": token,
            "lines": await chat.lines.since(visitor, 0),
            "tickets": await chat.tickets_of(visitor),
        }

    @router.get("/api/messages")
    async def poll(request: Request, after: int = 0, wait: float = 0) -> dict[str, Any]:
        visitor = visitor_or_401(request)
        lines = await chat.lines.since(visitor, after)
        if not lines and wait > 0:
            with chat.lines.waiter(visitor) as event, contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(wait, 25))
            lines = await chat.lines.since(visitor, after)
        return {"lines": lines, "tickets": await chat.tickets_of(visitor)}

    @router.post("/api/messages")
    async def send(request: Request, body: SendBody) -> dict[str, Any]:
        visitor = visitor_or_401(request)
        if refused := await chat.limits.message(visitor, request):
            return refused.response()  # type: ignore[return-value]
        await chat.turn(visitor, body)
        return {"ok": True}

    @router.get("/api/export")
    async def export(request: Request) -> JSONResponse:
        visitor = visitor_or_401(request)
        data = await visitor_export(chat.db, visitor)
        if data is None:
            raise HTTPException(404, "we store nothing about you yet")
        return JSONResponse(
            data,
            headers={
                "Content-Disposition": 'attachment; filename="careline-data.json"',
                "Cache-Control": "no-store",
            },
        )

    @router.post("/api/upload")
    async def upload(request: Request, client_id: str | None = None) -> dict[str, Any]:
        # No UploadFile parameter: FastAPI would read and parse the whole body before this
        # line; the visitor is checked first, then the body is streamed with a cap.
        visitor = visitor_or_401(request)
        if refused := await chat.limits.upload(visitor, request):
            return refused.response()  # type: ignore[return-value]
        try:
            described, content = await read_upload(
                request, chat.max_upload_bytes, owner=f"{Channel.WEBCHAT.value}:{visitor}"
            )
        except Refused as refusal:
            return refusal.response()  # type: ignore[return-value]
        stored = await chat.files.put(described, content)
        attachment = Attachment(
            kind="photo" if stored.is_photo else "document",
            name=stored.name,
            mime_type=stored.mime_type,
            size=stored.size,
            stored_id=stored.id,
        )
        await chat.turn(visitor, SendBody(text="", client_id=client_id), attachment)
        return {"ok": True, "size": stored.size}

    @router.websocket("/ws")
    async def socket(ws: WebSocket) -> None:
        if not origin_allowed(ws):
            await ws.close(code=4403, reason="this site may not open the chat")
            return
        offered = ws.scope.get("subprotocols", [])
        token = next(
            (p.removeprefix(VISITOR_PROTOCOL) for p in offered if p.startswith(VISITOR_PROTOCOL)),
            ws.cookies.get(COOKIE),
        )
        visitor = chat.visitors.visitor_of(token) if chat.visitors is not None else None
        if visitor is None:
            await ws.close(code=4401, reason="no chat session")
            return
        await ws.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
        last = int(ws.query_params.get("after", "0") or 0)

        async def push() -> None:
            nonlocal last
            with chat.lines.waiter(visitor) as event:
                while True:
                    # Clear before reading: a line stored while we send still wakes us.
                    event.clear()
                    lines = await chat.lines.since(visitor, last)
                    if lines:
                        last = lines[-1]["id"]
                        await ws.send_json(
                            {"lines": lines, "tickets": await chat.tickets_of(visitor)}
                        )
                        continue
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), timeout=chat.poll_seconds or 30)

        pusher = asyncio.create_task(push())
        try:
            while True:
                raw = await ws.receive_text()
                try:
                    body = SendBody.model_validate(json.loads(raw))
                except (ValueError, TypeError):
                    await ws.send_json({"error": 'Send JSON like {"text": "hello"}.'})
                    continue
                if refused := await chat.limits.message(visitor, ws):
                    await ws.send_json(refused.body)
                    continue
                await chat.turn(visitor, body)
        except WebSocketDisconnect:
            pass
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher

    return router


async def visitor_tickets(db: Database, visitor_id: str, limit: int = 5) -> list[dict[str, Any]]:
    """The visitor's latest tickets with status (in their words and language) and assignee,
    for the page's status bar."""
    async with db.uow() as uow:
        identity = await uow.customers.identity(Channel.WEBCHAT, visitor_id)
        if identity is None or identity.customer_id is None:
            return []
        customer = await uow.customers.get(identity.customer_id)
        language = customer.language if customer else None
        found = []
        for ticket in list(await uow.tickets.for_customer(identity.customer_id))[:limit]:
            agent = await uow.agents.get(ticket.assignee_id) if ticket.assignee_id else None
            found.append(
                {
                    "reference": ticket.reference,
                    "status": shipped_catalogue().text(f"status.{ticket.status.value}", language),
                    "assignee": agent.name if agent else None,
                    "subject": ticket.subject,
                }
            )
        return found


async def visitor_export(db: Database, visitor_id: str) -> dict[str, Any] | None:
    """Everything stored about the visitor's customer, as "Export my data" gives it."""
    async with db.uow() as uow:
        identity = await uow.customers.identity(Channel.WEBCHAT, visitor_id)
        if identity is None or identity.customer_id is None:
            return None
        data = await services.export_customer_data(uow, identity.customer_id)
    return json.loads(json.dumps(data, default=str))  # dates as the chat's export writes them


# -- the plug ------------------------------------------------------------------------------


class WebChatPlug:
    """The web chat as a channel plug (bots.channels.ChannelPlug): its page, API and socket,
    and the channel that writes notices into visitors' conversations (every role)."""

    def __init__(self, build: PlugBuild) -> None:
        settings, db = build.settings, build.db
        self.settings = settings
        self.chat = WebChat(
            db=db,
            engine=None,
            lines=WebChatLines(db),
            visitors=None,
            files=build.files,
            max_upload_bytes=settings.max_upload_bytes,
            max_text_chars=settings.max_text_chars,
            # Several processes share PostgreSQL: notice lines other replicas stored.
            poll_seconds=1.0 if db.is_postgres else None,
            tickets_of=lambda visitor: visitor_tickets(db, visitor),
            allowed_origins=allowed_origins(settings.webchat_allowed_origins, settings.public_url),
            limits=WebChatLimits.from_settings(settings, db),
        )
        self._channel = WebChatChannel(self.chat.lines)

    @property
    def channel(self) -> WebChatChannel:
        return self._channel

    def routes(self) -> list[Any]:
        return [webchat_router(self.chat)]

    def register(self, handlers: Any) -> None:
        """The web chat's notices are the customer notices' (bots.notices): nothing more."""

    async def start(self, start: PlugStart) -> list[asyncio.Task[None]]:
        if start.receives:
            self.chat.engine = start.engine
            self.chat.visitors = Visitors(
                URLSafeTimedSerializer(start.secret, salt="careline-webchat"),
                max_age=self.settings.webchat_token_max_age_days * 24 * 3600,
            )
        return []

    async def stop(self, grace: float) -> None:
        """Nothing of its own to stop: its sockets close with the server."""
