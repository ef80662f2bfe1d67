"""Relay benchmark: notices/s with 1 and 4 relay processes on PostgreSQL, pickup latency,
and the bot's rate limit held by 4 relays together.

A throwaway PostgreSQL cluster (tests/support/pgcluster.py), durable (fsync and synchronous
commits on); each relay is its own process. Raw throughput: each relay delivers into a fast
fake chat channel that paces every chat (one message per `--chat-gap` seconds, like a
Telegram adapter without the shared pacer); each relay's sends are checked afterwards
against that per-chat limit (a chat's notices sent by two relays are held apart by the
shared pacer only, which the global limit measures). Pickup latency is commit -> handler
start, with the relays idle and woken by LISTEN/NOTIFY. The global limit: 4 relays send
`--limit-notices` notices through the real Telegram channel (python-telegram-bot and
Careline's limiter with its shared slots, core.db.pacing; 29/s by default) to the fake Bot
API enforcing, with 429s, at most 30 messages in any second per bot and 1/s per chat (bursts
of 3); it reports the rate the fake received and its 429s.

    .venv/bin/python -m bench.relay_bench --notices 20000 --chats 10000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import queue
import statistics
import time
from collections import defaultdict
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, text

from bots.metrics import Metrics
from bots.relay import Delivery, Handlers, Relay
from bots.telegram import CarelineRateLimiter, TelegramChannel, bot_key, build_application
from core.config import Settings
from core.db import tables as t
from core.db.database import OUTBOX_CHANNEL, Database
from core.db.migrate import migrate
from core.db.pacing import SqlPacer
from core.events import Event
from core.model import utcnow
from dialogs.turn import Reply
from tests.fakes.contracts import settle_heap
from tests.fakes.telegram_api import FakeTelegram
from tests.support.pgcluster import PgCluster, find_bindir


@dataclass(frozen=True, slots=True)
class BenchNotice(Event):
    chat: str
    t0: float = 0.0  # wall clock just before the commit (latency runs only)


class PacedChannel:
    """A fast fake chat channel that, like a real adapter, paces each chat on its own."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self.next_slot: dict[str, float] = {}
        self.sends: list[tuple[str, float]] = []

    async def send(self, chat_id: str, reply: Reply) -> str:
        now = time.monotonic()
        slot = max(now, self.next_slot.get(chat_id, 0.0))
        self.next_slot[chat_id] = slot + self.gap
        if slot > now:
            await asyncio.sleep(slot - now)  # only this chat waits
        self.sends.append((chat_id, time.time()))
        return f"m{len(self.sends)}"


TOKEN = "123456:relay-bench-token"  # noqa: S105 (the fake Bot API's)


def relay_process(
    url: str, gap: float, stop: Any, ready: Any, results: Any, telegram: str | None = None
) -> None:
    asyncio.run(_relay_main(url, gap, stop, ready, results, telegram))


async def _telegram_channel(db: Database, base_url: str, stack: AsyncExitStack) -> Any:
    """The real Telegram channel, paced by the slots every relay shares."""
    settings = Settings(telegram_bot_token=TOKEN, telegram_api_base_url=base_url)
    metrics = Metrics()
    limiter = CarelineRateLimiter(
        metrics=metrics,
        overall_per_second=settings.telegram_overall_per_second,
        chat_per_second=settings.telegram_chat_per_second,
        max_retries=0,  # a 429 goes back to the relay, which counts and retries it
        pacer=SqlPacer(db),
        bot_key=bot_key(settings),
    )
    application = await stack.enter_async_context(build_application(settings, limiter))
    return TelegramChannel(application.bot, metrics)


async def _relay_main(
    url: str, gap: float, stop: Any, ready: Any, results: Any, telegram: str | None
) -> None:
    db = Database(url, pool_size=4)
    stack = AsyncExitStack()
    channel = await _telegram_channel(db, telegram, stack) if telegram else PacedChannel(gap)
    latencies: list[float] = []

    async def deliver(delivery: Delivery) -> str:
        chat = str(delivery.payload["chat"])
        return str(await channel.send(chat, Reply("Your ticket was updated.")))

    def started(delivery: Delivery) -> None:
        t0 = delivery.payload.get("t0") or 0.0
        if t0:
            latencies.append(time.time() - t0)

    handlers = Handlers()
    handlers.add(BenchNotice, "chat", deliver)
    relay = Relay(
        db, handlers, batch=100, max_in_flight=2000, idle_seconds=1.0, on_handler_start=started
    )
    stopping = asyncio.Event()
    runner = asyncio.create_task(relay.run(stopping))
    await asyncio.sleep(0.3)  # connected and listening
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.05)
    stopping.set()
    await runner
    await stack.aclose()
    await db.dispose()
    results.put((getattr(channel, "sends", []), latencies))


async def _reset(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE outbox_deliveries, outbox RESTART IDENTITY CASCADE"))


async def _bulk_insert(db: Database, notices: int, chats: int, prefix: str = "chat-") -> float:
    now = utcnow()
    rows = [
        {
            "event_type": "BenchNotice",
            "payload": {"chat": f"{prefix}{n % chats}", "t0": 0.0},
            "status": "pending",
            "created_at": now,
            "available_at": now,
            "attempts": 0,
        }
        for n in range(notices)
    ]
    async with db.engine.begin() as conn:
        await conn.execute(insert(t.outbox), rows)
        await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
    return time.monotonic()


async def _count_done(db: Database) -> int:
    async with db.engine.connect() as conn:
        done = select(func.count()).select_from(t.outbox).where(t.outbox.c.status == "done")
        return int((await conn.execute(done)).scalar_one())


def _start_relays(
    url: str, relays: int, gap: float, telegram: str | None = None
) -> tuple[list[Any], Any, Any]:
    ctx = mp.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(relays)]
    procs = [
        ctx.Process(target=relay_process, args=(url, gap, stop, readies[i], results, telegram))
        for i in range(relays)
    ]
    for proc in procs:
        proc.start()
    for ready, proc in zip(readies, procs, strict=True):
        if not ready.wait(60) or not proc.is_alive():
            _stop_all(procs, stop)
            raise RuntimeError(f"relay process {proc.pid} did not start (exit {proc.exitcode})")
    return procs, stop, results


def _stop_all(procs: list[Any], stop: Any) -> None:
    stop.set()
    for proc in procs:
        proc.join(10)
        if proc.is_alive():
            proc.terminate()  # our own child, by handle
            proc.join(5)


async def _wait_until_done(db: Database, procs: list[Any], target: int, seconds: float) -> None:
    """Poll the outbox until `target` rows are done; fail (never hang) on a dead relay."""
    deadline = time.monotonic() + seconds
    while await _count_done(db) < target:
        dead = [p.pid for p in procs if not p.is_alive()]
        if dead:
            raise RuntimeError(f"relay process(es) {dead} died")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{await _count_done(db)} of {target} done after {seconds:.0f} s")
        await asyncio.sleep(0.02)


def _collect(
    procs: list[Any], stop: Any, results: Any
) -> tuple[list[list[tuple[str, float]]], list]:
    """Each relay's sends, and the handlers' start latencies of all."""
    stop.set()
    sends: list[list[tuple[str, float]]] = []
    latencies: list[float] = []
    deadline = time.monotonic() + 60
    try:
        for _ in procs:  # read before joining: a child blocks on exit until its queue drains
            while True:
                try:
                    s, lat = results.get(timeout=1)
                    break
                except queue.Empty:
                    if time.monotonic() > deadline or not any(p.is_alive() for p in procs):
                        raise RuntimeError("a relay process never reported") from None
            sends.append(s)
            latencies += lat
    finally:
        _stop_all(procs, stop)
    return sends, latencies


def _violations(sends: list[tuple[str, float]], gap: float) -> int:
    by_chat: dict[str, list[float]] = defaultdict(list)
    for chat, at in sends:
        by_chat[chat].append(at)
    bad = 0
    for times in by_chat.values():
        times.sort()
        bad += sum(1 for a, b in itertools.pairwise(times) if b - a < gap - 0.01)
    return bad


async def throughput(url: str, relays: int, notices: int, chats: int, gap: float) -> dict:
    db = Database(url)
    await _reset(db)
    procs, stop, results = _start_relays(url, relays, gap)
    try:
        started = await _bulk_insert(db, notices, chats)
        await _wait_until_done(db, procs, notices, max(60.0, notices / 50))
        elapsed = time.monotonic() - started
    finally:
        by_relay, _ = _collect(procs, stop, results)
    await db.dispose()
    sends = [send for relay in by_relay for send in relay]
    duplicates = len(sends) - len({(c, round(a, 6)) for c, a in sends})
    return {
        "relays": relays,
        "notices_per_s": notices / elapsed,
        "seconds": elapsed,
        "sent": len(sends),
        "per_chat_violations": sum(_violations(relay, gap) for relay in by_relay),
        "duplicates": duplicates,
    }


def fake_bot_api(urls: Any, stop: Any, results: Any) -> None:
    """The fake Bot API in a process of its own, so its clock reads arrivals as they come
    (in the bench's process it would share the GIL with the bench's polling)."""
    with FakeTelegram(token=TOKEN, limits=(30.0, 1.0)) as fake:
        settle_heap()
        urls.put(fake.url)
        stop.wait()
        arrived = [c.at for c in fake.calls_to("sendMessage") if c.status == 200]
        results.put((arrived, dict(fake.limited_by)))


async def global_limit(url: str, relays: int, notices: int, chats: int) -> dict:
    """`relays` relays deliver through the real Telegram channel to a fake Bot API that
    enforces the bot's limits; the rate it received, and its 429s."""
    db = Database(url)
    await _reset(db)
    async with db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE send_pacing"))
    ctx = mp.get_context("spawn")
    urls, fake_stop, fake_results = ctx.Queue(), ctx.Event(), ctx.Queue()
    fake = ctx.Process(target=fake_bot_api, args=(urls, fake_stop, fake_results))
    fake.start()
    try:
        base = urls.get(timeout=60)
        procs, stop, results = _start_relays(url, relays, 0.0, telegram=f"{base}/bot")
        try:
            # Private chats have positive ids: the per-chat limit applies to them.
            await _bulk_insert(db, notices, chats, prefix="10")
            await _wait_until_done(db, procs, notices, max(120.0, notices / 10))
        finally:
            _collect(procs, stop, results)
        fake_stop.set()
        arrived, refused = fake_results.get(timeout=60)
    finally:
        fake_stop.set()
        fake.join(10)
    await db.dispose()
    arrived.sort()
    span = arrived[-1] - arrived[0]
    return {
        "relays": relays,
        "per_s": (len(arrived) - 1) / span if span > 0 else 0.0,
        "sent": len(arrived),
        "429s": refused,
    }


async def pickup(url: str, relays: int, events: int, rate: float) -> dict:
    db = Database(url)
    await _reset(db)
    procs, stop, results = _start_relays(url, relays, 0.0)
    try:
        for n in range(events):
            now = utcnow()
            row = {
                "event_type": "BenchNotice",
                "payload": {"chat": f"chat-{n}", "t0": time.time()},
                "status": "pending",
                "created_at": now,
                "available_at": now,
                "attempts": 0,
            }
            async with db.engine.begin() as conn:  # as a unit of work's commit does
                await conn.execute(insert(t.outbox), [row])
                await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
            await asyncio.sleep(1 / rate)
        await _wait_until_done(db, procs, events, 60.0)
    finally:
        _, latencies = _collect(procs, stop, results)
    await db.dispose()
    latencies.sort()
    return {
        "relays": relays,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
        "events": len(latencies),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notices", type=int, default=20000)
    parser.add_argument("--chats", type=int, default=10000)
    parser.add_argument("--chat-gap", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pickup-events", type=int, default=300)
    parser.add_argument("--pickup-rate", type=float, default=50.0)
    parser.add_argument("--limit-notices", type=int, default=600)
    parser.add_argument("--limit-chats", type=int, default=300)
    parser.add_argument("--skip-raw", action="store_true", help="only the global limit")
    args = parser.parse_args()

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries are missing")
    cluster = PgCluster(bindir, durable=True).start()
    try:
        url = cluster.url()
        db = Database(url)
        await migrate(db)
        await db.dispose()
        runs = [
            await global_limit(url, 4, args.limit_notices, args.limit_chats)
            for _ in range(args.runs)
        ]
        rates = [r["per_s"] for r in runs]
        median = statistics.median(rates)
        print(
            f"global limit relays=4: median {median:.1f} messages/s received "
            f"({100 * (median / 30 - 1):+.1f}% of 30/s; runs "
            f"{', '.join(f'{r:.1f}' for r in rates)}); 429s {[r['429s'] for r in runs]}, "
            f"sent {[r['sent'] for r in runs]} of {args.limit_notices}",
            flush=True,
        )
        if args.skip_raw:
            return
        for relays in (1, 4):
            runs = [
                await throughput(url, relays, args.notices, args.chats, args.chat_gap)
                for _ in range(args.runs)
            ]
            rates = [r["notices_per_s"] for r in runs]
            print(
                f"throughput relays={relays}: median {statistics.median(rates):,.0f} notices/s "
                f"(runs {', '.join(f'{r:,.0f}' for r in rates)}); "
                f"per-chat violations {[r['per_chat_violations'] for r in runs]}, "
                f"sent {[r['sent'] for r in runs]} of {args.notices}",
                flush=True,
            )
        for relays in (1, 4):
            runs = [
                await pickup(url, relays, args.pickup_events, args.pickup_rate)
                for _ in range(args.runs)
            ]
            p50 = statistics.median(r["p50_ms"] for r in runs)
            p95s = [r["p95_ms"] for r in runs]
            print(
                f"pickup relays={relays}: p50 median {p50:.1f} ms, p95 median "
                f"{statistics.median(p95s):.1f} ms (p95 runs "
                f"{', '.join(f'{x:.1f}' for x in p95s)})",
                flush=True,
            )
    finally:
        cluster.destroy()


if __name__ == "__main__":
    asyncio.run(main())
