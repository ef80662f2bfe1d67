"""The web chat's page, HTTP API and WebSocket, on the dialog engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
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
from pydantic import BaseModel, Field

from admin_api.headers import page_policy
from bots.channels import TurnEngine
from bots.webchat.limits import WebChatLimits
from bots.webchat.lines import WebChatLines, reply_body
from bots.webchat.uploads import Refused, read_upload
from bots.webchat.visitors import (
    COOKIE,
    HEADER,
    PROTOCOL,
    VISITOR_PROTOCOL,
    Visitors,
)
from core import services
from core.db.database import Database
from core.model import Channel
from core.ports import FileStore
from dialogs.catalogue import Catalogue, shipped_catalogue
from dialogs.turn import Attachment, UserSaid

log = logging.getLogger("careline.webchat")


STATIC = Path(__file__).parent.parent / "static"


LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


# The page says this when it opens on an empty conversation; the greeting answers it, and the
# visitor never typed it, so it is not shown as their line.
START = "/start"


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
