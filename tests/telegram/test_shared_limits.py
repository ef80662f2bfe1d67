"""One Telegram rate limit for the whole cluster: several processes' limiters reserve their
send slots in the same PostgreSQL rows, so together they keep to about 30 messages/s per bot
and 1/s per chat, against a fake Bot API that answers 429 beyond either limit."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from bots.channels import RetryLater
from bots.metrics import Metrics
from bots.telegram import CarelineRateLimiter, TelegramChannel, build_application
from core.config import Settings
from core.db.database import Database
from core.db.pacing import SqlPacer
from dialogs.turn import Reply
from tests.fakes.telegram_api import FakeTelegram
from tests.telegram.conftest import TOKEN

RATE = 29.0  # the default: Telegram's 30/s less room for network jitter


async def test_reservations_are_spaced_across_processes(pg_db: Database) -> None:
    """Three 'processes' (each its own pool) reserve 90 slots of one key at 30/s: the slots
    they are given are one interval apart, whoever asked."""
    url = pg_db.url.render_as_string(hide_password=False)
    pools = [Database(url, pool_size=2) for _ in range(3)]
    try:
        pacers = [SqlPacer(db) for db in pools]

        async def start(pacer: SqlPacer) -> float:
            return (await pacer.slot("test", "bot", RATE))[0]

        slots = sorted(await asyncio.gather(*(start(pacers[n % 3]) for n in range(90))))
    finally:
        for db in pools:
            await db.dispose()
    # On the database's clock, which every process shares: one interval apart, never less.
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) > 1 / RATE - 1e-4  # (epoch seconds as doubles: 0.1 ms is their grain)
    assert 89 / RATE - 1e-3 < slots[-1] - slots[0] < 89 / RATE + 0.5


async def test_a_quiet_chat_may_burst_then_is_held_to_its_rate(pg_db: Database) -> None:
    pacer = SqlPacer(pg_db)
    waits = [await pacer.reserve("test.chat", "42", 1.0, burst=3) for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.9 < waits[3] < 1.1 and 1.9 < waits[4] < 2.1


async def test_sqlite_is_refused(sqlite_db: Database) -> None:
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        SqlPacer(sqlite_db)


async def channels(
    fake: FakeTelegram, stack: AsyncExitStack, count: int, pacers: list[SqlPacer] | None
) -> list[TelegramChannel]:
    settings = Settings(telegram_bot_token=TOKEN, telegram_api_base_url=f"{fake.url}/bot")
    made = []
    for n in range(count):
        metrics = Metrics()
        limiter = CarelineRateLimiter(
            metrics=metrics,
            overall_per_second=RATE,
            max_retries=0,
            pacer=pacers[n] if pacers else None,
            bot_key=TOKEN.split(":")[0],
        )
        application = await stack.enter_async_context(build_application(settings, limiter))
        made.append(TelegramChannel(application.bot, metrics))
    return made


async def send_all(relays: list[TelegramChannel], messages: int, chats: int) -> int:
    """Each relay sends its share; how many were refused (429 -> RetryLater)."""
    refused = 0

    async def one(channel: TelegramChannel, n: int) -> None:
        nonlocal refused
        try:
            await channel.send(str(1000 + n % chats), Reply(f"notice {n}"))
        except RetryLater:
            refused += 1

    await asyncio.gather(*(one(relays[n % len(relays)], n) for n in range(messages)))
    return refused


@pytest.fixture
async def limited() -> AsyncIterator[FakeTelegram]:
    # Three relays and the fake share this process (and its GIL), so sends arrive with more
    # jitter than across processes: room for 3 more in a second (bench.relay_bench runs each
    # relay apart and allows none).
    with FakeTelegram(token=TOKEN, limits=(30.0, 1.0), overall_slack=3) as fake:
        yield fake


async def test_three_relays_together_keep_the_bots_limits(
    pg_db: Database, limited: FakeTelegram
) -> None:
    url = pg_db.url.render_as_string(hide_password=False)
    pools = [Database(url, pool_size=4) for _ in range(3)]
    async with AsyncExitStack() as stack:
        relays = await channels(limited, stack, 3, [SqlPacer(db) for db in pools])
        started = time.monotonic()
        refused = await send_all(relays, messages=90, chats=30)
        elapsed = time.monotonic() - started
    for db in pools:
        await db.dispose()
    assert refused == 0 and limited.limited == 0
    assert len(limited.sent_texts()) == 90
    assert elapsed > 89 / RATE - 0.1  # not faster than the bot may send


async def test_without_the_shared_limit_relays_exceed_it(limited: FakeTelegram) -> None:
    """The control: each relay pacing alone at 30/s sends 90/s together, and Telegram says
    so (which is what the shared slots prevent)."""
    async with AsyncExitStack() as stack:
        relays = await channels(limited, stack, 3, None)
        refused = await send_all(relays, messages=90, chats=90)
    assert refused > 0 and limited.limited == refused
