"""What every scenario shares: sizes, the run context, waiting, and the relay check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

from core import services
from core.db import tables as t
from core.db.database import Database
from core.errors import Conflict
from resilience.procs import SECRET, TOKEN, Fake, Processes, Server, server_env
from resilience.report import Result

NO_RELAY = "no relay handlers registered"
WATCH_SECONDS = 0.5  # how often a running scenario looks at its processes and fakes
CLEAN_UP_SECONDS = 60.0  # what a stopped scenario gets to end its processes
LOAD_AGENT = "load-agent@example.com"  # the agent who takes the load's tickets

T = TypeVar("T")


class Broken(RuntimeError):
    """A fake or the server broke during a scenario (the message says which and why)."""


@dataclass(frozen=True)
class Size:
    """How hard each scenario pushes (`quick`, `full` or the short CI run)."""

    updates: int
    chats: int
    kills: int
    pg_updates: int
    pg_chats: int
    slack_events: int
    fuzz_examples: int
    schemathesis_examples: int

    @classmethod
    def named(cls, name: str) -> Size:
        return SIZES[name]


SIZES = {
    "ci": Size(80, 8, 1, 90, 9, 12, 60, 0),
    "quick": Size(600, 30, 4, 400, 20, 100, 300, 20),
    "full": Size(10_000, 200, 12, 3_000, 100, 1_000, 2_000, 100),
}


@dataclass
class Context:
    procs: Processes
    workdir: Path
    size: Size
    database: str = "sqlite"  # or a PostgreSQL URL (scenario 1 on PostgreSQL)
    seed: int = 0

    def sqlite_url(self, name: str) -> str:
        return f"sqlite+aiosqlite:///{self.workdir / name}.db"

    def folder(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def sms_env(url: str, fake: Fake, workdir: Path, **extra: str) -> dict[str, str]:
    """Careline with Twilio pointed at the fake (tests/fakes/twilio_api.py)."""
    from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, SUPPORT_NUMBER

    return server_env(
        url,
        workdir,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM_NUMBER=SUPPORT_NUMBER,
        TWILIO_API_BASE_URL=fake.url,
        **extra,
    )


def telegram_env(url: str, fake: Fake, workdir: Path, **extra: str) -> dict[str, str]:
    return server_env(
        url,
        workdir,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
        TELEGRAM_API_BASE_URL=f"{fake.url}/bot",
        **extra,
    )


async def wait_until(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]], within: float, every: float = 0.05
) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        outcome = check()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return True
        await asyncio.sleep(every)
    return False


async def supervised(procs: Processes, work: Awaitable[T]) -> T:
    """Run a scenario, stopping it at once when `procs.trouble()` names a reason.

    Every wait of a scenario (its loads, `wait_until`, the relay check) is cancelled with it,
    so a fake that broke or a server that died fails the scenario in about WATCH_SECONDS
    with that reason, instead of after the scenario's deadlines.
    """
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=WATCH_SECONDS)
            if done:
                return task.result()
            reason = await asyncio.to_thread(procs.trouble)
            if reason is not None:
                task.cancel()
                await asyncio.wait({task}, timeout=CLEAN_UP_SECONDS)
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: the reason below is what counts
                raise Broken(reason)
    finally:
        if not task.done():
            task.cancel()
        procs.stop_watching()


async def tickets_of(db: Database, channel: str, external_id: str) -> int:
    """How many tickets the customer of this channel identity has."""
    ci, tk = t.channel_identities.c, t.tickets.c
    async with db.engine.connect() as conn:
        count = await conn.scalar(
            select(func.count(tk.id))
            .select_from(t.tickets.join(t.channel_identities, tk.identity_id == ci.id))
            .where(ci.channel == channel, ci.external_id == external_id)
        )
    return int(count or 0)


async def message_counts(db: Database, prefix: str) -> dict[str, int]:
    """How often each message body starting with `prefix` is stored (exactly once each)."""
    m = t.messages.c
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(m.body, func.count()).where(m.body.startswith(prefix)).group_by(m.body)
        )
        return {str(body): int(n) for body, n in rows}


async def outbox_backlog(database_url: str) -> tuple[int, int]:
    """(outbox rows not done, deliveries dead)."""
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            open_rows = await conn.scalar(
                select(func.count()).select_from(t.outbox).where(t.outbox.c.status != "done")
            )
            dead = await conn.scalar(
                select(func.count())
                .select_from(t.outbox_deliveries)
                .where(t.outbox_deliveries.c.status == "dead")
            )
    finally:
        await db.dispose()
    return int(open_rows or 0), int(dead or 0)


async def assign_as_opened(database_url: str, finished: Callable[[], bool]) -> int:
    """An agent takes each ticket as it opens (once the agent exists, the server's own
    auto-assignment may be quicker), so the relay has chat notices to send ("… is looking
    after CR-…") while the scenario interrupts it. Rides out a dead or locked database.
    Returns how many tickets the agent holds at the end."""
    db = Database(database_url)
    agent_id: int | None = None
    try:
        while True:
            done = finished()  # read first: tickets opened before it was true get assigned
            try:
                async with db.uow() as uow:
                    if agent_id is None:
                        agent = await uow.agents.by_email(
                            LOAD_AGENT
                        ) or await services.create_agent(
                            uow, name="Load Agent", email=LOAD_AGENT, capacity=1000
                        )
                        await uow.commit()
                        agent_id = agent.id
                    assert agent_id is not None
                    waiting = await uow.session.scalars(
                        select(t.tickets.c.id).where(t.tickets.c.assignee_id.is_(None))
                    )
                    for ticket_id in list(waiting):
                        await services.assign_ticket(uow, ticket_id, agent_id, force=True)
                    await uow.commit()
                    if done:
                        return len(await uow.tickets.held_by(agent_id))
            except (DBAPIError, OSError, Conflict, StaleDataError):  # down, locked, raced: again
                pass
            await asyncio.sleep(0.5)
    finally:
        await db.dispose()


async def check_relay(result: Result, server: Server, database_url: str, within: float) -> None:
    """Notices: every outbox row done (each handler at least once), none dead."""
    if NO_RELAY in server.log_text():
        result.notes.append(
            "relay notices not checked: the server registers no relay handlers "
            "(bots/server.py default_relay_handlers returns None)"
        )
        return

    async def drained() -> bool:
        open_rows, _ = await outbox_backlog(database_url)
        return open_rows == 0

    await wait_until(drained, within, every=0.5)
    open_rows, dead = await outbox_backlog(database_url)
    if open_rows or dead:
        result.lost += open_rows + dead
        result.fail(f"outbox after {within:.0f} s: {open_rows} rows not done, {dead} dead")
