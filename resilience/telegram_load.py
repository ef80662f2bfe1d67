"""Inbound Telegram load that behaves like Telegram: redeliver until 2xx, one chat in order.

Each chat first asks for a person (`/human`, which opens a ticket), then writes numbered
notes that the engine adds to that ticket. Every update's effect can thus be counted in the
database afterwards: one ticket per chat, one customer message per note.

Telegram runs a Bot API method given in the body of a webhook's 2xx answer; the load
generator runs it against the fake Bot API, as Telegram would (and, like Telegram, reports
nothing back). So the fake records every message a customer gets, whichever way it went, and
`judge` attributes each one to the chat, the update or notice, and the content it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select

from core.db import tables as t
from core.db.database import Database
from core.model import reference_of

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
    settled_at: float | None = None  # after the Bot API method of its answer was run

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
    bot_api: str  # where Telegram would run a webhook answer's method: the fake's /bot<token>
    max_attempts: int = 400
    deadline_seconds: float = 120.0
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
                await self._run_answer(client, response)
                sent.settled_at = time.time()
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

    async def _run_answer(self, client: httpx.AsyncClient, response: httpx.Response) -> None:
        """Run the Bot API method of a webhook's answer, as Telegram does (result unreported)."""
        try:
            answer = response.json() if response.content else None
        except ValueError:
            return
        if not isinstance(answer, dict) or "method" not in answer:
            return
        params = {k: v for k, v in answer.items() if k != "method"}
        with contextlib.suppress(httpx.HTTPError):
            await client.post(f"{self.bot_api}/{answer['method']}", json=params)


@dataclass
class Effects:
    """What the database says each update did."""

    tickets_per_chat: dict[int, int]
    references: dict[str, set[str]]  # chat -> its tickets' references (CR-...)
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
                select(ci.chat_id, tk.id)
                .select_from(t.tickets.join(t.channel_identities, tk.identity_id == ci.id))
                .where(ci.channel == "telegram")
            )
            references: dict[str, set[str]] = {}
            for chat, ticket in rows:
                references.setdefault(str(chat), set()).add(reference_of(int(ticket)))
            tickets = {int(chat): len(refs) for chat, refs in references.items()}
            rows = await conn.execute(
                select(msg.body, func.count())
                .where(msg.author == "customer", msg.body.like("note %"))
                .group_by(msg.body)
            )
            notes = {str(body): int(n) for body, n in rows}
            inbox_rows = await conn.execute(
                select(ib.key, ib.status, ib.payload).where(ib.source == "telegram")
            )
            inbox: dict[int, tuple[str, int]] = {}
            for key, status, payload in inbox_rows:
                if str(key).isdigit():
                    replies = len((payload or {}).get("replies") or ())
                    inbox[int(key)] = (str(status), replies)
            notices = await _chat_notices(conn)
    finally:
        await db.dispose()
    return Effects(tickets, references, notes, inbox, notices)


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


# -- judging what the customers got --------------------------------------------------------

IN_FLIGHT_SECONDS = 5.0  # a send this close before an interruption may not be recorded yet
REFERENCE = re.compile(r"\bCR-\d+\b")


@dataclass(frozen=True)
class Received:
    """One message the fake Bot API accepted for a chat (any method that is not a `get`)."""

    chat: str
    method: str
    text: str
    at: float
    message_id: str | None


@dataclass
class Verdict:
    updates: int = 0
    lost: int = 0
    duplicated: int = 0  # updates with more than one effect in the database
    replies_expected: int = 0
    replies_missing: int = 0
    replies_duplicated: int = 0  # the same reply again, or more replies than the turn gave
    parked: int = 0
    unattributed_sends: int = 0  # sent to a chat when no update of it was being delivered
    notices: int = 0  # the relay's chat notice deliveries
    notices_done: int = 0  # recorded as sent, with the provider's message id
    notices_delivered: int = 0  # ... and found among the fake's messages
    notices_duplicated: int = 0
    in_flight: int = 0  # repeats of a message sent just before an interruption (see judge)
    calls: dict[str, int] = field(default_factory=dict)  # "method status" -> count
    examples: list[str] = field(default_factory=list)

    @property
    def repeats(self) -> int:
        """Every message a customer got more than once, or that nobody asked for."""
        return self.replies_duplicated + self.notices_duplicated + self.unattributed_sends

    def note(self, text: str) -> None:
        if len(self.examples) < 8:
            self.examples.append(text)


def received_messages(api_calls: list[dict[str, Any]], verdict: Verdict) -> list[Received]:
    """Every successful call that put something in a chat; all calls are counted by method."""
    found: list[Received] = []
    for call in api_calls:
        method, status = str(call.get("method")), call.get("status")
        key = f"{method} {status}"
        verdict.calls[key] = verdict.calls.get(key, 0) + 1
        params = call.get("params") or {}
        if status != 200 or "chat_id" not in params or method.lower().startswith("get"):
            continue
        text = str(params.get("text", params.get("caption", "")))
        at = float(call.get("at") or 0.0)
        result_id = call.get("result_id")
        found.append(Received(str(params["chat_id"]), method, text, at, result_id))
    return sorted(found, key=lambda m: m.at)


def in_flight(first: float, again: float, interruptions: Iterable[tuple[float, float]]) -> bool:
    """The repeat the design allows: the earlier copy went out just before an interruption
    (kill -9, database down), too late for its `done` record, and the copy after it."""
    return any(
        start - IN_FLIGHT_SECONDS <= first <= end and again >= start for start, end in interruptions
    )


def judge(
    conversations: list[list[Sent]],
    effects: Effects,
    api_calls: list[dict[str, Any]],
    interruptions: Sequence[tuple[float, float]] = (),
) -> Verdict:
    """Exactly one effect per update; every reply and notice delivered exactly once.

    Each message the fake accepted is attributed by chat and content: a chat notice is the
    message whose id the relay recorded (and any other with its text is that notice again);
    a reply belongs to the update of its chat being delivered when it was sent (a chat's
    updates go one at a time), and must name that chat's ticket if it names one. A repeat is a
    duplicate; it also counts as `in_flight` when `in_flight()` explains it by an interruption
    (wall-clock times, as the fake records them).
    """
    verdict = Verdict()
    notice_ids: dict[str, set[str]] = {}
    for chat, status, provider_id in effects.notices:
        verdict.notices += 1
        if status == "done" and provider_id:
            verdict.notices_done += 1
            notice_ids.setdefault(chat, set()).add(provider_id)
    by_chat: dict[str, list[Received]] = {}
    for message in received_messages(api_calls, verdict):
        by_chat.setdefault(message.chat, []).append(message)
    replies: dict[int, dict[tuple[str, str], list[Received]]] = {}
    for script in conversations:
        chat = str(script[0].chat_id) if script else ""
        owned = _attribute_chat(
            script, by_chat.get(chat, []), notice_ids.get(chat, set()), effects, verdict,
            interruptions,
        )  # fmt: skip
        replies.update(owned)
    for script in conversations:
        for sent in script:
            _judge_update(sent, effects, replies.get(sent.update_id, {}), verdict, interruptions)
    return verdict


def _attribute_chat(
    script: Sequence[Sent],
    messages: list[Received],
    notice_ids: set[str],
    effects: Effects,
    verdict: Verdict,
    interruptions: Sequence[tuple[float, float]],
) -> dict[int, dict[tuple[str, str], list[Received]]]:
    """Notices of one chat checked here; its replies grouped per update and content."""
    notices = [m for m in messages if m.message_id in notice_ids and m.method == "sendMessage"]
    verdict.notices_delivered += len({m.message_id for m in notices})
    notice_texts = {m.text for m in notices}
    for text in notice_texts:
        copies = [m for m in messages if m.method == "sendMessage" and m.text == text]
        verdict.notices_duplicated += len(copies) - 1
        _count_in_flight(copies, verdict, interruptions, f"notice {text[:40]!r}")
    owned: dict[int, dict[tuple[str, str], list[Received]]] = {}
    mine = effects.references.get(str(script[0].chat_id), set()) if script else set()
    for message in messages:
        if message.method == "sendMessage" and message.text in notice_texts:
            continue
        owner = next(
            (s for s in script if s.first_at <= message.at <= (s.settled_at or float("inf"))),
            None,
        )
        foreign = set(REFERENCE.findall(message.text)) - mine
        if owner is None or foreign:
            verdict.unattributed_sends += 1
            why = f"names {sorted(foreign)}" if foreign else "while no update was delivered"
            verdict.note(f"chat {message.chat} got {message.method} {message.text[:40]!r} {why}")
            continue
        by_content = owned.setdefault(owner.update_id, {})
        by_content.setdefault((message.method, message.text), []).append(message)
    return owned


def _count_in_flight(
    copies: list[Received],
    verdict: Verdict,
    interruptions: Sequence[tuple[float, float]],
    what: str,
) -> None:
    for earlier, again in itertools.pairwise(copies):
        if in_flight(earlier.at, again.at, interruptions):
            verdict.in_flight += 1
        else:
            verdict.note(f"repeated: {what} at {earlier.at:.3f} and {again.at:.3f}")


def _judge_update(
    sent: Sent,
    effects: Effects,
    replies: dict[tuple[str, str], list[Received]],
    verdict: Verdict,
    interruptions: Sequence[tuple[float, float]],
) -> None:
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
    for (method, text), copies in replies.items():
        verdict.replies_duplicated += len(copies) - 1
        _count_in_flight(copies, verdict, interruptions, f"{method} {text[:40]!r}")
    # Every update of the plan is answered in a clean run, so at least one reply is owed
    # even when the server stored none (the answer rode in the webhook's 2xx).
    owed = max(stored, 1)
    got = len(replies)
    verdict.replies_expected += owed
    details = (
        f"(inbox {status}, {stored} stored, {sent.attempts} deliveries, answers {sent.statuses})"
    )
    if got < owed:
        verdict.replies_missing += 1
        verdict.note(f"reply missing: update {sent.update_id} got {got} of {owed} {details}")
    elif got > owed:  # more different messages than the turn gave
        verdict.replies_duplicated += got - owed
        verdict.note(f"extra replies: update {sent.update_id} got {got} of {owed} {details}")
