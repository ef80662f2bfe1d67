"""Rate-limit benchmark: hits/s of the PostgreSQL limiter (one upsert per hit, autocommit).

A throwaway PostgreSQL cluster (tests/support/pgcluster.py); `--concurrency` tasks of one
process hit the limiter, either all on one key (every hit waits for the same row lock: the
worst case) or each on its own keys. Prints the median of `--runs`, next to a bare
`SELECT 1` on a pooled connection (the floor: a hit is one pool checkout and one statement).

    .venv/bin/python -m bench.ratelimit_bench --hits 20000 --concurrency 10 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from sqlalchemy import text

from core.db.database import Database
from core.db.migrate import migrate
from core.db.ratelimit import SqlRateLimiter
from core.ports import RateLimit
from tests.support.pgcluster import PgCluster, find_bindir

LIMIT = RateLimit("bench", 1_000_000_000, 3600)


async def one_run(db: Database, hits: int, concurrency: int, what: str, run: int) -> float:
    limiter = SqlRateLimiter(db)

    async def worker(n: int) -> None:
        for i in range(hits // concurrency):
            if what == "select 1":
                async with db.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            else:
                key = f"hot-{run}" if what == "one key" else f"k-{run}-{n}-{i % 100}"
                await limiter.hit(LIMIT, key)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return hits / (time.perf_counter() - started)


async def bench(url: str, hits: int, concurrency: int, runs: int) -> None:
    db = Database(url, pool_size=concurrency)
    try:
        await migrate(db)
        await one_run(db, 1000, concurrency, "many keys", run=-1)  # warm the pool and caches
        for what in ("one key", "many keys", "select 1"):
            rates = [await one_run(db, hits, concurrency, what, run) for run in range(runs)]
            print(
                f"{what:>10}: {statistics.median(rates):8.0f} /s median of {runs} "
                f"({', '.join(f'{r:.0f}' for r in rates)}), {concurrency} concurrent"
            )
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hits", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("needs the PostgreSQL server binaries (initdb, pg_ctl)")
    cluster = PgCluster(bindir, durable=True).start()
    try:
        asyncio.run(bench(cluster.url(), args.hits, args.concurrency, args.runs))
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
