"""Admin API list / filter / search latency with 1,000,000 tickets in PostgreSQL.

    python -m bench.admin_bench [--tickets 1000000] [--requests 200] [--pg-url URL]

Starts a throwaway PostgreSQL cluster on 127.0.0.1 (unless --pg-url), migrates it, adds the
admin API indexes of core/db/tables.py that the migration may not have yet, loads tickets
with INSERT ... SELECT generate_series, then serves the admin API with uvicorn on an
ephemeral port and times real HTTP requests, one at a time, per scenario: p50 and p95.
Targets: p95 <= 30 ms for list and filter, <= 100 ms for text search.

Then the console's pages (issue 21), signed in as an admin, over HTTP the same way: the
queue's views, filters and search, a ticket's page and its live timeline, the agents' and
saved replies' pages. Target: p95 <= 100 ms for every page.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.schema import CreateIndex

from admin_api.app import create_admin_app
from bots.server import settle_heap
from core.config import Settings
from core.db import tables as t
from core.db.database import Database
from core.db.keys import create_key
from core.db.migrate import migrate
from core.db.queries import TicketFilter, list_tickets

AGENTS = 50
CATEGORIES = ["billing", "technical", "account", "delivery", "banking", "telecom", "product",
              "other"]  # fmt: skip
# A support vocabulary: common words appear in many tickets, the rare ones in few.
COMMON = [
    "card", "charged", "twice", "refund", "order", "payment", "account", "login", "password",
    "reset", "delivery", "parcel", "late", "missing", "broken", "screen", "phone", "signal",
    "internet", "slow", "bill", "invoice", "plan", "upgrade", "cancel", "subscription",
    "transfer", "bank", "app", "crash", "error", "message", "please", "help", "since",
    "yesterday", "week", "month", "today", "again", "still", "waiting", "customer", "service",
]  # fmt: skip
RARE = [
    "chargeback", "roaming", "firmware", "warranty", "voucher", "overdraft", "sim", "esim",
    "router", "modem", "courier", "tracking", "iban", "swift", "mortgage", "pension",
    "dispute", "fraud",
]  # fmt: skip


def _sql_words(words: list[str]) -> str:
    return "ARRAY[" + ",".join(f"'{w}'" for w in words) + "]"


LOAD_SQL = f"""
INSERT INTO tickets (customer_id, subject, description, category, priority, channel, status,
    assignee_id, created_at, updated_at, first_response_at, resolved_at, closed_at,
    first_response_due, resolution_due, csat_score, human_requested, version)
SELECT
    1 + (g % :customers),
    initcap(w[1 + (g * 7) % array_length(w, 1)]) || ' ' || w[1 + (g * 13) % array_length(w, 1)]
        || ' ' || w[1 + (g * 31) % array_length(w, 1)],
    w[1 + (random() * (array_length(w, 1) - 1))::int] || ' '
        || w[1 + (random() * (array_length(w, 1) - 1))::int] || ' '
        || w[1 + (random() * (array_length(w, 1) - 1))::int] || ' '
        || w[1 + (random() * (array_length(w, 1) - 1))::int] || ' '
        || w[1 + (random() * (array_length(w, 1) - 1))::int] || ' '
        || w[1 + (random() * (array_length(w, 1) - 1))::int] || ' '
        || CASE WHEN g % 50 = 0 THEN r[1 + (g / 50) % array_length(r, 1)] ELSE '' END
        || ' ticket ' || g,
    c[1 + g % array_length(c, 1)],
    (ARRAY['low','normal','normal','normal','high','urgent'])[1 + (g * 7) % 6],
    (ARRAY['telegram','slack','webchat'])[1 + g % 3],
    s.status,
    CASE WHEN s.status = 'new' OR g % 97 = 0 THEN NULL ELSE 1 + (g * 11) % {AGENTS} END,
    s.created, s.created + interval '3 hours',
    CASE WHEN s.status <> 'new' THEN s.created + interval '40 minutes' END,
    CASE WHEN s.status IN ('resolved', 'closed') THEN s.created + interval '2 hours' END,
    CASE WHEN s.status = 'closed' THEN s.created + interval '3 hours' END,
    s.created + interval '8 hours', s.created + interval '72 hours',
    CASE WHEN s.status IN ('resolved','closed') AND g % 3 = 0 THEN 1 + g % 5 END,
    false, 1
FROM generate_series(1, :n) AS g,
     LATERAL (SELECT {_sql_words(COMMON)} AS w, {_sql_words(RARE)} AS r,
                     {_sql_words(CATEGORIES)} AS c) AS v,
     LATERAL (SELECT
        now() - (interval '730 days' * (1 - g::float / :n)) AS created,
        CASE WHEN g > :n - 20000 THEN (ARRAY['new','open','open','waiting'])[1 + g % 4]
             WHEN g % 20 = 0 THEN 'resolved' ELSE 'closed' END AS status) AS s
"""


async def load(db: Database, n: int, customers: int) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO customers (display_name, language, created_at) "
            "SELECT 'Customer ' || g, 'en', now() FROM generate_series(1, :c) g"
        ), {"c": customers})  # fmt: skip
        await conn.execute(text(
            "INSERT INTO agents (name, email, skills, capacity, created_at) "
            "SELECT 'Agent ' || g, 'agent' || g || '@example.com', '[]', 100000, now() "
            "FROM generate_series(1, :a) g"
        ), {"a": AGENTS})  # fmt: skip
        for start in range(0, n, 250_000):
            size = min(250_000, n - start)
            # Batches keep memory flat; ids and times stay in one sequence across batches.
            await conn.execute(
                text(
                    LOAD_SQL.replace(
                        "generate_series(1, :n)", f"generate_series({start + 1}, {start + size})"
                    )
                ),
                {"n": n, "customers": customers},
            )
            print(f"  loaded {start + size:,} tickets", flush=True)


async def add_admin_indexes(db: Database) -> None:
    """The `# --- admin API indexes ---` block of tables.py, for a migration that predates it."""
    names = ("ix_tickets_created_id", "ix_tickets_updated_id", "ix_tickets_assignee_created",
             "ix_tickets_active_created", "ix_tickets_search")  # fmt: skip
    async with db.engine.begin() as conn:
        for index in t.tickets.indexes:
            if index.name in names:
                ddl = str(CreateIndex(index, if_not_exists=True).compile(dialect=db.engine.dialect))
                started = time.perf_counter()
                await conn.execute(text(ddl))
                print(f"  {index.name}: {time.perf_counter() - started:.1f} s", flush=True)
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE tickets"))


Params = Callable[[random.Random], dict[str, Any]]


def scenarios(n: int) -> dict[str, tuple[str, Params]]:
    def month(rng: random.Random) -> dict[str, Any]:
        days = rng.randint(40, 700)
        return {"created_from": f"-P{days}D", "created_to": f"-P{days - 30}D"}

    return {
        "list: newest first": ("list", lambda r: {}),
        "list: oldest first": ("list", lambda r: {"sort": "created_at"}),
        "list: by last update": ("list", lambda r: {"sort": "-updated_at"}),
        "list: page 20 (cursor)": ("list", lambda r: {"_pages": 20}),
        "filter: status=open": ("filter", lambda r: {"status": "open"}),
        "filter: status=closed,priority=urgent": (
            "filter", lambda r: {"status": "closed", "priority": "urgent"}),
        "filter: category": ("filter", lambda r: {"category": r.choice(CATEGORIES)}),
        "filter: assignee": ("filter", lambda r: {"assignee_id": r.randint(1, AGENTS)}),
        "filter: assignee+status=open": (
            "filter", lambda r: {"assignee_id": r.randint(1, AGENTS), "status": "open"}),
        "filter: customer": ("filter", lambda r: {"customer_id": r.randint(1, 100_000)}),
        "filter: unassigned": ("filter", lambda r: {"unassigned": "true"}),
        "filter: SLA breached": ("filter", lambda r: {"sla_breached": "true"}),
        "filter: created in a month": ("filter", month),
        "filter: category+priority+month": (
            "filter", lambda r: {**month(r), "category": r.choice(CATEGORIES),
                                 "priority": "high"}),
        "search: common word": ("search", lambda r: {"q": r.choice(COMMON)}),
        "search: rare word": ("search", lambda r: {"q": r.choice(RARE)}),
        "search: two words": ("search", lambda r: {"q": f"{r.choice(COMMON)} "
                                                        f"{r.choice(COMMON)}"}),
        "search: common word + category": (
            "search", lambda r: {"q": r.choice(COMMON), "category": r.choice(CATEGORIES)}),
        "search: rare word + status": (
            "search", lambda r: {"q": r.choice(RARE), "status": "closed"}),
        "search: reference": ("search", lambda r: {"q": f"CR-{1000 + r.randint(1, n)}"}),
    }  # fmt: skip


def _resolve(params: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    out = {}
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("-P") and value.endswith("D"):
            value = (datetime.now(UTC) - timedelta(days=int(value[2:-1]))).isoformat()
        out[key] = value
    return out


async def measure(client: httpx.AsyncClient, headers: dict[str, str], requests: int,
                  n: int) -> dict[str, tuple[str, float, float, int]]:  # fmt: skip
    rng = random.Random(7)
    results = {}
    for name, (kind, make) in scenarios(n).items():
        latencies = []
        items = 0
        for i in range(requests + 10):
            params = _resolve(make(rng))
            pages = params.pop("_pages", 1)
            cursor = None
            # For deep pages, walk to the page first and time only its request.
            for _ in range(pages - 1):
                page = (await client.get("/tickets", params={**params, **(
                    {"cursor": cursor} if cursor else {})}, headers=headers)).json()  # fmt: skip
                cursor = page["next_cursor"]
            if cursor:
                params["cursor"] = cursor
            started = time.perf_counter()
            response = await client.get("/tickets", params=params, headers=headers)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text
            if i >= 10:  # the first ten warm caches and connections
                latencies.append(elapsed * 1000)
                items += len(response.json()["items"])
        latencies.sort()
        p50 = statistics.median(latencies)
        p95 = latencies[int(len(latencies) * 0.95) - 1]
        results[name] = (kind, p50, p95, items // requests)
        print(f"  {name:<40} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   ({items // requests} "
              f"items/page)", flush=True)  # fmt: skip
    return results


def _filter(params: dict[str, Any]) -> tuple[TicketFilter, Any, str | None]:
    from datetime import datetime

    f = TicketFilter()
    for key in ("status", "priority", "category"):
        if key in params:
            setattr(f, key, [params[key]])
    for key in ("assignee_id", "customer_id"):
        if key in params:
            setattr(f, key, int(params[key]))
    for key in ("unassigned", "sla_breached"):
        if key in params:
            setattr(f, key, params[key] == "true")
    for key in ("created_from", "created_to"):
        if key in params:
            setattr(f, key, datetime.fromisoformat(params[key]))
    f.q = params.get("q")
    return f, params.get("sort", "-created_at"), params.get("cursor")


async def measure_queries(db: Database, requests: int, n: int) -> dict[str, tuple[float, float]]:
    """The same scenarios as direct queries (session + SQL, no HTTP, no JSON)."""
    rng = random.Random(7)
    results = {}
    for name, (_kind, make) in scenarios(n).items():
        latencies = []
        for i in range(requests + 10):
            params = _resolve(make(rng))
            pages = params.pop("_pages", 1)
            f, sort, _ = _filter(params)
            cursor = None
            async with db.uow() as uow:
                for _ in range(pages - 1):
                    _rows, cursor = await list_tickets(uow.session, f, postgres=True, sort=sort,
                                                       cursor=cursor)  # fmt: skip
            started = time.perf_counter()
            async with db.uow() as uow:
                await list_tickets(uow.session, f, postgres=True, sort=sort, cursor=cursor)
            if i >= 10:
                latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        results[name] = (statistics.median(latencies), latencies[int(len(latencies) * 0.95) - 1])
        print(f"  {name:<40} p50 {results[name][0]:6.1f} ms   p95 {results[name][1]:6.1f} ms",
              flush=True)  # fmt: skip
    return results


CONSOLE_TOKEN = "bench-console-session"  # noqa: S105 (a throwaway cluster's session)


def console_app() -> Any:
    """The console for the server process, mounted at /console as `careline serve` does."""
    import os

    from fastapi import FastAPI

    from admin_api.console.app import create_console_app

    db = Database(os.environ["CARELINE_DATABASE_URL"], pool_size=4)
    app = FastAPI()
    app.mount("/console", create_console_app(db, Settings(_env_file=None), lambda: "bench"))  # type: ignore[call-arg]
    settle_heap()  # as `careline serve` does once started
    return app


async def sign_in_admin(db: Database) -> None:
    """An admin account and a live session with a known cookie, straight in the database."""
    from datetime import timedelta

    from admin_api.console.security import hash_password, token_hash
    from core.db import staff

    async with db.sessions() as session:
        invitation_id = await staff.invite(
            session, email="bench@example.com", name="Bench Admin", role="admin", agent_id=None,
            nonce="bench", created_by="bench", ttl=timedelta(days=1),
        )  # fmt: skip
        found = await staff.invitation(session, invitation_id)
        assert found is not None
        staff_id = await staff.accept(
            session, found, email="bench@example.com", name="Bench Admin",
            password_hash=await hash_password("bench password 1"),
        )  # fmt: skip
        assert staff_id is not None
        await staff.open_session(
            session, staff_id, token_hash(CONSOLE_TOKEN), "csrf", timedelta(days=1)
        )
        await staff.save_canned(
            session, title="Thanks", body="Thanks, {customer_name}!", by="bench"
        )
        await session.commit()


def console_pages(n: int) -> dict[str, Callable[[random.Random], str]]:
    def ticket(rng: random.Random) -> int:
        return rng.randint(1, n)

    return {
        "console: queue, all": lambda r: "/console/?view=all",
        "console: queue, unassigned": lambda r: "/console/?view=unassigned",
        "console: queue, status=open": lambda r: "/console/?view=all&status=open",
        "console: queue, SLA breached": lambda r: "/console/?view=all&breached=1",
        "console: queue, category+priority": lambda r: (
            f"/console/?view=all&category={r.choice(CATEGORIES)}&priority=high"),
        "console: queue, search common word": lambda r: f"/console/?view=all&q={r.choice(COMMON)}",
        "console: queue, search rare word": lambda r: f"/console/?view=all&q={r.choice(RARE)}",
        "console: queue rows (live refresh)": lambda r: "/console/?view=all&fragment=rows",
        "console: ticket page": lambda r: f"/console/tickets/{ticket(r)}",
        "console: ticket timeline (live)": lambda r: f"/console/tickets/{ticket(r)}/timeline",
        "console: agents": lambda r: "/console/agents",
        "console: saved replies": lambda r: "/console/canned",
        "console: reports, 30 days": lambda r: "/console/reports?days=30",
        "console: dead letters": lambda r: "/console/dead-letters",
        "console: API keys": lambda r: "/console/keys",
    }  # fmt: skip


async def serve_console_and_measure(db: Database, requests: int, n: int) -> dict[str, float]:
    """The console's pages in their own uvicorn process; p95 of each, in ms."""

    await sign_in_admin(db)
    server, port = _serve(db, "console_app")
    rng = random.Random(11)
    worst: dict[str, float] = {}
    try:
        cookies = {"careline_console": CONSOLE_TOKEN}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, cookies=cookies
        ) as client:
            for _ in range(200):
                try:
                    if (await client.get("/console/agents")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            for name, make in console_pages(n).items():
                latencies = []
                for i in range(requests + 10):
                    path = make(rng)
                    started = time.perf_counter()
                    response = await client.get(path)
                    elapsed = time.perf_counter() - started
                    assert response.status_code == 200, (path, response.status_code)
                    if i >= 10:
                        latencies.append(elapsed * 1000)
                latencies.sort()
                p50 = statistics.median(latencies)
                p95 = latencies[int(len(latencies) * 0.95) - 1]
                worst[name] = p95
                print(f"  {name:<40} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms", flush=True)
    finally:
        server.terminate()
        server.wait(10)
    return worst


def _serve(db: Database, factory: str) -> tuple[Any, int]:
    """An app of this module in its own uvicorn process on a free port, so client and server
    do not share a loop."""
    import os
    import subprocess
    import sys

    from tests.support.pgcluster import free_port

    port = free_port()
    env = {**os.environ,
           "CARELINE_DATABASE_URL": db.url.render_as_string(hide_password=False)}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", f"bench.admin_bench:{factory}",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--lifespan", "off", "--no-access-log"],
        env=env,
    )  # fmt: skip
    return server, port


def bench_app() -> Any:
    """The admin API for the server process (`uvicorn --factory bench.admin_bench:bench_app`)."""
    import os

    db = Database(os.environ["CARELINE_DATABASE_URL"], pool_size=4)
    # No per-key limit: the benchmark times queries, and its one key asks far more than 600
    # times a minute on a small data set.
    settings = Settings(_env_file=None, api_requests_per_minute=0)  # type: ignore[call-arg]
    app = create_admin_app(db, settings)
    settle_heap()  # as `careline serve` does once started
    return app


async def serve_and_measure(db: Database, requests: int, n: int) -> dict[str, Any]:
    """Runs the API in its own uvicorn process, so client and server do not share a loop."""

    async with db.uow() as uow:
        key = (await create_key(uow.session, name="bench", role="admin")).key
        await uow.commit()
    server, port = _serve(db, "bench_app")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            headers = {"Authorization": f"Bearer {key}"}
            for _ in range(200):
                try:
                    if (await client.get("/me", headers=headers)).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            baseline = []
            for i in range(requests + 10):
                started = time.perf_counter()
                assert (await client.get("/me", headers=headers)).status_code == 200
                if i >= 10:
                    baseline.append((time.perf_counter() - started) * 1000)
            baseline.sort()
            print(
                f"  {'baseline: GET /me (auth only)':<40} p50 {statistics.median(baseline):6.1f}"
                f" ms   p95 {baseline[int(len(baseline) * 0.95) - 1]:6.1f} ms",
                flush=True,
            )
            return await measure(client, headers, requests, n)
    finally:
        server.terminate()
        server.wait(10)


async def main_async(args: argparse.Namespace) -> None:
    cluster = None
    url = args.pg_url
    if url is None:
        from tests.support.pgcluster import PgCluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL server binaries found; pass --pg-url")
        cluster = PgCluster(bindir, durable=True).start()
        # A modest production-like setup: room for the hot part of the table, no JIT
        # (its compile time dwarfs millisecond queries).
        cluster.psql("ALTER SYSTEM SET shared_buffers = '512MB'")
        cluster.psql("ALTER SYSTEM SET jit = off")
        cluster.psql("ALTER SYSTEM SET maintenance_work_mem = '256MB'")
        cluster.restart_server()
        url = cluster.url()
    db = Database(url, pool_size=4)
    try:
        started = time.perf_counter()
        await migrate(db)
        print(f"loading {args.tickets:,} tickets ...", flush=True)
        await load(db, args.tickets, customers=100_000)
        print(f"loaded in {time.perf_counter() - started:.0f} s; indexes:", flush=True)
        await add_admin_indexes(db)
        print(f"ready after {time.perf_counter() - started:.0f} s; {args.requests} requests "
              "per scenario, one at a time", flush=True)  # fmt: skip
        print("the same scenarios as direct queries (no HTTP):", flush=True)
        await measure_queries(db, args.requests, args.tickets)
        print("over HTTP (uvicorn process on 127.0.0.1, httpx client):", flush=True)
        results = await serve_and_measure(db, args.requests, args.tickets)
        worst: dict[str, float] = {}
        for kind, _p50, p95, _items in results.values():
            worst[kind] = max(worst.get(kind, 0.0), p95)
        print("console pages (uvicorn process, signed in as an admin):", flush=True)
        pages = await serve_console_and_measure(db, args.requests, args.tickets)
        worst["console"] = max(pages.values())
        targets = {"list": 30.0, "filter": 30.0, "search": 100.0, "console": 100.0}
        for kind, p95 in worst.items():
            verdict = "ok" if p95 <= targets[kind] else "OVER TARGET"
            print(f"worst p95 {kind:<7} {p95:6.1f} ms (target {targets[kind]:.0f}) {verdict}")
    finally:
        try:
            await db.dispose()
        finally:  # even when the dispose is cancelled too
            if cluster is not None:
                cluster.destroy()


async def _until_signalled(args: argparse.Namespace) -> None:
    # SIGTERM/SIGINT cancel the run, so its `finally` still stops the throwaway cluster.
    task = asyncio.create_task(main_async(args))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--pg-url", default=None)
    asyncio.run(_until_signalled(parser.parse_args()))


if __name__ == "__main__":
    main()
