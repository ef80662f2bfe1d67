"""Ticket-open transactions per second and latency, on SQLite and on PostgreSQL.

    python -m bench.ticket_bench [--seconds 5] [--concurrency 8] [--pg-url URL]

Each transaction is what a dialog turn does when it opens a ticket: open_ticket (ticket,
first message, SLA stamps, TicketOpened in the outbox) and commit. Without --pg-url a
throwaway PostgreSQL cluster is started on 127.0.0.1 (the machine's server binaries).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from core import services
from core.db.database import Database
from core.db.migrate import migrate
from core.model import Channel
from tests.support.customers import register_customer


async def run_load(db: Database, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    async with db.uow() as uow:
        customer, identity = await register_customer(
            uow, channel=Channel.WEBCHAT, external_id="bench", chat_id="bench"
        )
        await uow.commit()
    assert customer.id is not None
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            async with db.uow() as uow:
                await services.open_ticket(
                    uow,
                    customer_id=customer.id or 0,
                    identity_id=identity.id,
                    description="My card was charged twice for one order",
                    category="billing",
                    channel=Channel.WEBCHAT,
                )
                await uow.commit()
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return int(len(latencies) / elapsed), latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else 0.0


async def bench(name: str, url: str, seconds: float, concurrency: int, **options: Any) -> None:
    db = Database(url, pool_size=concurrency, **options)
    await migrate(db)
    await run_load(db, 0.5, concurrency)  # warm up pools and caches
    tps, lat = await run_load(db, seconds, concurrency)
    await db.dispose()
    print(
        f"{name:<11} {concurrency:>3} sessions  {tps:>6} tx/s  "
        f"p50 {pct(lat, 50):6.2f} ms  p99 {pct(lat, 99):6.2f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pg-url", help="an empty PostgreSQL database (asyncpg URL)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        await bench("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", args.seconds, 1)
        await bench("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench2.db'}", args.seconds,
                    args.concurrency)  # fmt: skip
        # CARELINE_SQLITE_DURABLE_COMMITS=true: an fsync of the log at every commit.
        for concurrency in (1, args.concurrency):
            url = f"sqlite+aiosqlite:///{Path(tmp) / f'durable{concurrency}.db'}"
            await bench("sqlite FULL", url, args.seconds, concurrency, sqlite_durable=True)

    cluster = None
    url = args.pg_url
    if url is None:
        from tests.support.pgcluster import PgCluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            print("postgresql  skipped: no server binaries (apt-get install postgresql)")
            return
        cluster = PgCluster(bindir, durable=True).start()
        url = cluster.url()
    try:
        await bench("postgresql", url, args.seconds, 1)
        await bench("postgresql", url, args.seconds, args.concurrency)
    finally:
        if cluster is not None:
            cluster.destroy()


if __name__ == "__main__":
    asyncio.run(main())
