"""The web chat's stored conversation of each visitor, in-process wake-ups for new lines, and
the relay's way in (`WebChatChannel`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from typing import Any

from bots.channels import OutgoingFile, PermanentFailure
from bots.notices import AgentReply
from core.db.database import Database
from core.db.webchat import add_line, lines_since
from core.files import human_size
from core.model import Channel
from dialogs.turn import Reply

HISTORY_LIMIT = 200


EXPORT_ROUTE = "/chat/api/export"


EXPORT_LINK = "Download your data (JSON file)"


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
