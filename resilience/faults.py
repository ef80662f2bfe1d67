"""3. Platform faults: SendGrid 429/500/timeouts for a while, Telegram 429 and 403.

Every email must go out once SendGrid recovers; a Telegram 429's `retry_after` must be
waited out before the next call to that chat; a customer who blocked the bot (403) and
chose chat-only notices must be told by email instead.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web
from sqlalchemy import func, select, update

from core import services
from core.db import tables as t
from core.db.database import Database
from resilience.harness import Context, telegram_env, wait_until
from resilience.procs import SECRET, Server, start_fake
from resilience.report import Result
from resilience.telegram_load import Sent

SENDGRID_KEY = "SG.resilience-key"
RETRY_AFTER = 3  # seconds Telegram asks us to wait


@dataclass
class FaultySendGrid:
    """/v3/mail/send that answers 429, 500 or too slowly until `healthy_at`, then 202.

    A too-slow answer never accepts the mail (like a gateway timeout); an accepted mail is
    kept with its relay key (`custom_args.careline_key`) to find losses and duplicates.
    """

    healthy_at: float = 0.0
    slow_seconds: float = 11.0  # the client gives up after 10 s
    accepted: list[tuple[str, str, str]] = field(default_factory=list)  # (key, to, subject)
    faults: dict[str, int] = field(default_factory=dict)
    _cycle: Any = field(default_factory=lambda: itertools.cycle(["429", "500", "429", "slow"]))
    url: str = ""
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SENDGRID_KEY}":
            return web.json_response({"errors": [{"message": "bad key"}]}, status=401)
        body = await request.json()
        if time.monotonic() < self.healthy_at:
            fault = next(self._cycle)
            self.faults[fault] = self.faults.get(fault, 0) + 1
            if fault == "429":
                return web.json_response(
                    {"errors": [{"message": "too many requests"}]},
                    status=429,
                    headers={"Retry-After": "2"},
                )
            if fault == "500":
                return web.json_response({"errors": [{"message": "oops"}]}, status=500)
            await asyncio.sleep(self.slow_seconds)
            return web.json_response({"errors": [{"message": "timeout"}]}, status=504)
        personalization = (body.get("personalizations") or [{}])[0]
        key = str((personalization.get("custom_args") or {}).get("careline_key", ""))
        to = str((personalization.get("to") or [{}])[0].get("email", ""))
        self.accepted.append((key, to, str(body.get("subject", ""))))
        return web.Response(status=202, headers={"X-Message-Id": f"sg-{len(self.accepted)}"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v3/mail/send", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def _post(client: httpx.AsyncClient, url: str, sent: Sent) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    for _ in range(30):  # Telegram redelivers until 2xx; bounded here
        try:
            response = await client.post(url, json=sent.body(), headers=headers)
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            continue
        if response.is_success:
            return response.status_code
        await asyncio.sleep(0.5)
    return 0


async def platform_faults(ctx: Context) -> list[Result]:
    size = ctx.size
    customers = max(6, size.chats // 2)
    fault_seconds = 8.0 if customers <= 6 else 20.0
    email = Result(
        "SendGrid 429/500/timeouts",
        load=f"{customers} customers' emails",
        faults=f"SendGrid failing {fault_seconds:.0f} s",
    )
    telegram_429 = Result("Telegram 429 retry_after", load="2 chats", faults=f"429 {RETRY_AFTER} s")
    blocked = Result("Telegram 403 -> email", load=f"{customers // 3} chats", faults="bot blocked")
    workdir = ctx.folder("faults")
    sendgrid = FaultySendGrid()
    await sendgrid.start()
    telegram = start_fake(ctx.procs, "tests.fakes.telegram_api", workdir)
    url = ctx.sqlite_url("faults")
    env = telegram_env(
        url,
        telegram,
        workdir,
        SENDGRID_API_KEY=SENDGRID_KEY,
        SENDGRID_API_HOST=sendgrid.url,
        # Direct answers through the Bot API, so that they meet the injected 429s too.
        CARELINE_TELEGRAM_REPLY_IN_WEBHOOK_ANSWER="false",
    )
    server = Server(ctx.procs, env, workdir)
    db = Database(url)
    try:
        server.start()
        await asyncio.to_thread(server.wait_ready)
        chats = [7_400_000_001 + n for n in range(customers)]
        blocked_chats, limited_chats = chats[: customers // 3], chats[-2:]
        update_ids = itertools.count(950_000_001)
        hook = f"{server.url}/telegram/webhook"
        async with httpx.AsyncClient(timeout=60) as client:
            # First contact registers each customer; then give them a verified address.
            for chat in chats:
                await _post(client, hook, Sent(next(update_ids), chat, 1, "/start", False))
            async with db.engine.begin() as conn:
                ci, cu = t.channel_identities.c, t.customers.c
                for chat in chats:
                    customer = select(ci.customer_id).where(ci.chat_id == str(chat))
                    await conn.execute(
                        update(t.customers)
                        .where(cu.id.in_(customer.scalar_subquery()))
                        .values(
                            email=f"customer{chat}@example.com",
                            email_verified=True,
                            notify="chat" if chat in blocked_chats else "both",
                        )
                    )
            for chat in blocked_chats:
                telegram.fault("sendMessage", status=403, times=1_000, key=str(chat), body={
                    "ok": False, "error_code": 403,
                    "description": "Forbidden: bot was blocked by the user",
                })  # fmt: skip
            for chat in limited_chats:
                telegram.fault("sendMessage", status=429, times=1, key=str(chat), body={
                    "ok": False, "error_code": 429,
                    "description": f"Too Many Requests: retry after {RETRY_AFTER}",
                    "parameters": {"retry_after": RETRY_AFTER},
                })  # fmt: skip
            sendgrid.healthy_at = time.monotonic() + fault_seconds
            await asyncio.gather(
                *(
                    _post(client, hook, Sent(next(update_ids), chat, 2, "/human", True))
                    for chat in chats
                )
            )
            # /human is answered in its own turn; the notice that follows (an agent resolves
            # the ticket) cannot reach a blocked chat, so it must come by email instead.
            await _resolve_tickets_of(db, blocked_chats)

        async def deliveries() -> dict[str, int]:
            d = t.outbox_deliveries.c
            async with db.engine.connect() as conn:
                rows = await conn.execute(
                    select(d.status, func.count())
                    .where(d.handler == "customer_email")
                    .group_by(d.status)
                )
                return {str(s): int(n) for s, n in rows}

        async def settled() -> bool:
            # Every outbox row, not only the email deliveries: a blocked chat's notice goes
            # out by email from its customer_chat delivery, which may still be retrying.
            states = await deliveries()
            if not states or not set(states) <= {"done", "skipped", "dead"}:
                return False
            async with db.engine.connect() as conn:
                open_rows = await conn.scalar(
                    select(func.count()).where(t.outbox.c.status == "pending")
                )
            return not open_rows

        # The relay's backoff after the faults stop, plus a second per customer's mail.
        await wait_until(settled, 60 + 3 * fault_seconds + customers, every=1.0)
        recovered = time.monotonic() - sendgrid.healthy_at
        states = await deliveries()
        await _judge_email(email, db, sendgrid, states, recovered)
        await _judge_blocked(blocked, db, sendgrid, blocked_chats)
        _judge_429(telegram_429, await asyncio.to_thread(telegram.calls), limited_chats)
    finally:
        server.stop()
        await db.dispose()
        await sendgrid.stop()
    return [email, telegram_429, blocked]


async def _judge_email(
    result: Result, db: Database, sendgrid: FaultySendGrid, states: dict[str, int], took: float
) -> None:
    d, o = t.outbox_deliveries.c, t.outbox.c
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(d.event_id, d.handler, d.status).where(
                d.handler.in_(("customer_email", "customer_chat")), d.status == "done"
            )
        )
        done = {f"careline-{e}-{h}" for e, h, _ in rows}
        pending = await conn.scalar(select(func.count()).where(o.status != "done"))
    keys = [key for key, _, _ in sendgrid.accepted]
    sent_by_email = {k for k in done if k in keys}
    emailed_done = {k for k in done if k.endswith("customer_email")}
    lost = emailed_done - set(keys)
    result.lost += len(lost) + states.get("dead", 0) + int(pending or 0)
    result.duplicated += len(keys) - len(set(keys))
    result.recover_seconds = took
    faults = ", ".join(f"{k} x{v}" for k, v in sorted(sendgrid.faults.items()))
    result.notes.append(
        f"email deliveries {states}; {len(sendgrid.accepted)} accepted "
        f"({len(sent_by_email)} keys); faults served: {faults or 'none'}"
    )
    if not sendgrid.faults:
        result.fail("no request met a fault: the scenario proved nothing")
    if states.get("dead") or pending:
        result.fail(f"{states.get('dead', 0)} dead emails, {pending} outbox rows not done")


async def _resolve_tickets_of(db: Database, chats: list[int]) -> None:
    ci, tk = t.channel_identities.c, t.tickets.c
    async with db.uow() as uow:
        ids = await uow.session.scalars(
            select(tk.id)
            .join(t.channel_identities, ci.id == tk.identity_id)
            .where(ci.chat_id.in_([str(c) for c in chats]))
        )
        for ticket_id in list(ids):
            await services.resolve_ticket(uow, ticket_id, actor="agent")
        await uow.commit()


async def _judge_blocked(
    result: Result, db: Database, sendgrid: FaultySendGrid, blocked_chats: list[int]
) -> None:
    ci = t.channel_identities.c
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(ci.chat_id, ci.reachable).where(ci.chat_id.in_([str(c) for c in blocked_chats]))
        )
        reachable = {str(chat): bool(flag) for chat, flag in rows}
    for chat in blocked_chats:
        to = f"customer{chat}@example.com"
        told = [subject for _, address, subject in sendgrid.accepted if address == to]
        if reachable.get(str(chat), True):
            result.fail(f"chat {chat} answered 403 but is still marked reachable")
        if not any("resolved" in s.lower() for s in told):
            result.lost += 1
            result.notes.append(f"chat {chat}: no resolution notice by email (got {told})")


def _judge_429(result: Result, calls: list[dict[str, Any]], limited_chats: list[int]) -> None:
    for chat in limited_chats:
        mine = [
            c
            for c in calls
            if c.get("method") == "sendMessage"
            and str((c.get("params") or {}).get("chat_id")) == str(chat)
        ]
        limited = [c for c in mine if c.get("status") == 429]
        if not limited:
            result.fail(f"chat {chat}: the 429 was never served")
            continue
        at = float(limited[0]["at"])
        text = (limited[0].get("params") or {}).get("text")
        timeline = ", ".join(
            f"{float(c['at']) - at:+.2f}s {c.get('status')} "
            f"{str((c.get('params') or {}).get('text'))[:24]!r}"
            for c in mine
        )
        result.notes.append(f"chat {chat}: {timeline}")
        retries = [
            float(c["at"]) - at
            for c in mine
            if float(c["at"]) > at and (c.get("params") or {}).get("text") == text
        ]
        # A call that arrives within 0.25 s was already on its way when the 429 was answered.
        early = [
            float(c["at"]) - at for c in mine if 0.25 < float(c["at"]) - at < RETRY_AFTER - 0.05
        ]
        if not retries:
            result.lost += 1
            result.notes.append(f"chat {chat}: the refused message was never sent again")
        elif min(retries) < RETRY_AFTER - 0.05 or early:
            result.fail(f"chat {chat}: called again {min(retries + early):.1f} s after the 429")
        if not any(c.get("status") == 200 for c in mine if float(c["at"]) > at):
            result.lost += 1
            result.notes.append(f"chat {chat}: the message never went out after the 429")
