"""Inbound Telegram load that behaves like Telegram: redeliver until 2xx, one chat in order.

Each chat first asks for a person (`/human`, which opens a ticket), then writes numbered
notes that the engine adds to that ticket. Every update's effect can thus be counted in the
database afterwards: one ticket per chat, one customer message per note.

Telegram runs a Bot API method given in the body of a webhook's 2xx answer; the load
generator counts such an answer as a reply delivered to that update (like Telegram, it does
not report whether it worked).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select

from core.db import tables as t
from core.db.database import Database

FIRST_CHAT = 7_100_000_001
FIRST_UPDATE = 800_000_001


@dataclass
class Sent:
    """One update and what happened to its deliveries."""

    update_id: int
    chat_id: int
    message_id: int
    text: str
    opens_ticket: bool
    attempts: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    first_at: float = 0.0
    acked_at: float | None = None
    answered_in_body: int = 0  # 2xx answers carrying a Bot API method

    def body(self) -> dict[str, Any]:
        person = {"id": self.chat_id, "is_bot": False, "first_name": "Load", "language_code": "en"}
        chat = {"id": self.chat_id, "type": "private", "first_name": "Load"}
        message = {
            "message_id": self.message_id,
            "from": person,
            "chat": chat,
            "date": int(time.time()),
            "text": self.text,
        }
        if self.text.startswith("/"):
            command = self.text.split(" ", 1)[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": self.update_id, "message": message}


def plan(updates: int, chats: int, *, first_chat: int = FIRST_CHAT) -> list[list[Sent]]:
    """`updates` updates spread over `chats` chats; per chat `/human` then notes."""
    per_chat = [updates // chats + (1 if i < updates % chats else 0) for i in range(chats)]
    update_ids = iter(range(FIRST_UPDATE, FIRST_UPDATE + updates))
    conversations: list[list[Sent]] = []
    for i, count in enumerate(per_chat):
        chat_id = first_chat + i
        script: list[Sent] = []
        for n in range(count):
            update_id = next(update_ids)
            text = "/human" if n == 0 else f"note {update_id} from chat {chat_id}"
            script.append(Sent(update_id, chat_id, n + 1, text, opens_ticket=n == 0))
        conversations.append(script)
    return conversations


@dataclass
class Load:
    """Delivers the planned updates to a webhook like Telegram does; bounded in tries and time."""

    url: str
    secret: str
    conversations: list[list[Sent]]
    max_attempts: int = 400
    deadline_seconds: float = 900.0
    in_flight: int = 32  # Telegram's max_connections is 40 by default
    request_timeout: float = 30.0
    on_ack: Callable[[Sent], None] | None = None
    on_answer: Callable[[str, float, float], None] | None = None  # status, asked, answered
    acked: int = 0
    gave_up: list[Sent] = field(default_factory=list)
    last_ack_at: float = 0.0

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.in_flight, max_keepalive_connections=16)
        gate = asyncio.Semaphore(self.in_flight)
        deadline = time.monotonic() + self.deadline_seconds
        headers = {
            "Content-Type": "application/json",
            "X-Telegram-Bot-Api-Secret-Token": self.secret,
        }
        async with httpx.AsyncClient(timeout=self.request_timeout, limits=limits) as client:

            async def chat(script: Sequence[Sent]) -> None:
                for sent in script:
                    ok = await self._deliver(client, gate, headers, sent, deadline)
                    if not ok:  # Telegram keeps a chat's order: later updates wait behind it
                        self.gave_up.extend(s for s in script if s.acked_at is None)
                        return

            await asyncio.gather(*(chat(script) for script in self.conversations))

    async def _deliver(
        self,
        client: httpx.AsyncClient,
        gate: asyncio.Semaphore,
        headers: dict[str, str],
        sent: Sent,
        deadline: float,
    ) -> bool:
        content = json.dumps(sent.body())
        pause = 0.1
        while sent.attempts < self.max_attempts and time.monotonic() < deadline:
            sent.attempts += 1
            if not sent.first_at:
                sent.first_at = time.time()
            async with gate:
                asked = time.monotonic()
                response: httpx.Response | None = None
                try:
                    response = await client.post(self.url, content=content, headers=headers)
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                else:
                    status = str(response.status_code)
            if self.on_answer is not None:
                self.on_answer(status, asked, time.monotonic())
            if response is not None and response.is_success:
                sent.statuses[status] = sent.statuses.get(status, 0) + 1
                sent.acked_at = time.time()
                if response.content and "method" in response.json():
                    sent.answered_in_body += 1
                self.acked += 1
                self.last_ack_at = time.monotonic()
                if self.on_ack is not None:
                    self.on_ack(sent)
                return True
            sent.statuses[status] = sent.statuses.get(status, 0) + 1
            # Telegram backs off too; jitter keeps 200 chats from retrying in lockstep.
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 2.0)
        return False


@dataclass
class Effects:
    """What the database says each update did."""

    tickets_per_chat: dict[int, int]
    notes: dict[str, int]  # note text -> customer messages with that body
    inbox: dict[int, tuple[str, int]]  # update_id -> (status, replies stored)
    notices: list[tuple[str, str, str | None]]  # relay chat notices: (chat_id, status, provider id)


async def read_effects(database_url: str, conversations: list[list[Sent]]) -> Effects:
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            ci, tk, msg, ib = (
                t.channel_identities.c,
                t.tickets.c,
                t.messages.c,
                t.inbox.c,
            )
            rows = await conn.execute(
                select(ci.chat_id, func.count(tk.id))
                .select_from(t.tickets.join(t.channel_identities, tk.identity_id == ci.id))
                .where(ci.channel == "telegram")
                .group_by(ci.chat_id)
            )
            tickets = {int(chat): int(n) for chat, n in rows}
            rows = await conn.execute(
                select(msg.body, func.count())
                .where(msg.author == "customer", msg.body.like("note %"))
                .group_by(msg.body)
            )
            notes = {str(body): int(n) for body, n in rows}
            rows = await conn.execute(
                select(ib.key, ib.status, ib.payload).where(ib.source == "telegram")
            )
            inbox: dict[int, tuple[str, int]] = {}
            for key, status, payload in rows:
                if str(key).isdigit():
                    replies = len((payload or {}).get("replies") or ())
                    inbox[int(key)] = (str(status), replies)
            notices = await _chat_notices(conn)
    finally:
        await db.dispose()
    return Effects(tickets, notes, inbox, notices)


CHAT_HANDLERS = ("customer_chat", "agent_reply_chat")


async def _chat_notices(conn: Any) -> list[tuple[str, str, str | None]]:
    """The relay's chat notices to Telegram customers, with the message id it recorded."""
    d, o, tk, ci = t.outbox_deliveries.c, t.outbox.c, t.tickets.c, t.channel_identities.c
    chats = {
        int(ticket): str(chat)
        for ticket, chat in await conn.execute(
            select(tk.id, ci.chat_id)
            .select_from(t.tickets.join(t.channel_identities, tk.identity_id == ci.id))
            .where(ci.channel == "telegram")
        )
    }
    rows = await conn.execute(
        select(o.payload, d.status, d.provider_id)
        .select_from(t.outbox_deliveries.join(t.outbox, d.event_id == o.id))
        .where(d.handler.in_(CHAT_HANDLERS))
    )
    found: list[tuple[str, str, str | None]] = []
    for payload, status, provider_id in rows:
        chat = chats.get(int((payload or {}).get("ticket_id") or 0))
        if chat is not None:
            found.append((chat, str(status), None if provider_id is None else str(provider_id)))
    return found


@dataclass
class Verdict:
    updates: int = 0
    lost: int = 0
    duplicated: int = 0
    replies_expected: int = 0
    replies_missing: int = 0
    replies_duplicated: int = 0
    parked: int = 0
    unattributed_sends: int = 0
    notices: int = 0  # the relay's chat notice deliveries
    notices_done: int = 0  # recorded as sent, with the provider's message id
    notices_delivered: int = 0  # ... and found among the fake's messages
    notices_duplicated: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < 8:
            self.examples.append(text)


def judge(
    conversations: list[list[Sent]], effects: Effects, api_calls: list[dict[str, Any]]
) -> Verdict:
    """Exactly one effect per update; every stored reply delivered at least once."""
    verdict = Verdict()
    windows: dict[int, list[Sent]] = {}
    for script in conversations:
        for sent in script:
            windows.setdefault(sent.chat_id, []).append(sent)
    delivered: dict[int, int] = {}
    texts: dict[int, list[str]] = {}
    # The fake numbers each chat's messages 1, 2, ...: the relay's recorded provider ids
    # tell which sends were its notices.
    recorded: dict[str, set[str]] = {}
    for chat, status, provider_id in effects.notices:
        verdict.notices += 1
        if status == "done" and provider_id:
            verdict.notices_done += 1
            recorded.setdefault(chat, set()).add(provider_id)
    sends: dict[str, list[tuple[float, str]]] = {}
    for call in api_calls:
        if call.get("method") != "sendMessage" or call.get("status") != 200:
            continue
        params = call.get("params") or {}
        chat = str(params.get("chat_id"))
        sends.setdefault(chat, []).append((float(call.get("at") or 0.0), str(params.get("text"))))
    for chat, chat_sends in sends.items():
        notice_ids = recorded.get(chat, set())
        notice_texts = {text for n, (_, text) in enumerate(chat_sends, 1) if str(n) in notice_ids}
        verdict.notices_delivered += len(
            notice_ids & {str(n) for n in range(1, len(chat_sends) + 1)}
        )
        for n, (at, text) in enumerate(chat_sends, 1):
            if str(n) in notice_ids:
                continue
            if text in notice_texts:  # the same notice again: sent, then crashed before recorded
                verdict.notices_duplicated += 1
                continue
            owner = next(
                (
                    s
                    for s in windows.get(int(chat), ())
                    if s.first_at <= at <= (s.acked_at or float("inf"))
                ),
                None,
            )
            if owner is None:
                verdict.unattributed_sends += 1
                continue
            delivered[owner.update_id] = delivered.get(owner.update_id, 0) + 1
            texts.setdefault(owner.update_id, []).append(f"{at:.3f}:{text[:40]}")

    for script in conversations:
        for sent in script:
            verdict.updates += 1
            if sent.opens_ticket:
                count = effects.tickets_per_chat.get(sent.chat_id, 0)
                what = f"chat {sent.chat_id}: {count} tickets"
            else:
                count = effects.notes.get(sent.text, 0)
                what = f"update {sent.update_id}: {count} customer messages"
            status, stored = effects.inbox.get(sent.update_id, ("missing", 0))
            if status == "parked":
                verdict.parked += 1
            if count == 0:
                verdict.lost += 1
                verdict.note(f"lost: {what} (inbox {status}, {sent.attempts} deliveries)")
            elif count > 1:
                verdict.duplicated += 1
                verdict.note(f"duplicated: {what}")
            got = delivered.get(sent.update_id, 0) + sent.answered_in_body
            # Every update of the plan is answered in a clean run, so at least one reply is
            # owed even when the server stored none (a reply lost before it was stored).
            owed = max(stored, 1)
            verdict.replies_expected += owed
            if got < owed:
                verdict.replies_missing += 1
                verdict.note(
                    f"reply missing: update {sent.update_id} ({sent.text[:20]!r}) got {got} "
                    f"of {owed} (inbox {status}, {stored} stored, {sent.attempts} deliveries, "
                    f"answers {sent.statuses})"
                )
            elif got > owed:
                verdict.replies_duplicated += got - owed
                verdict.note(
                    f"reply duplicated: update {sent.update_id} ({sent.text[:20]!r}) got {got} "
                    f"of {owed} (inbox {status}, {sent.attempts} deliveries, "
                    f"answers {sent.statuses}, sent {texts.get(sent.update_id)})"
                )
    return verdict
