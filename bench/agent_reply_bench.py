"""P2: an agent's reply in a ticket's Slack thread, until it reaches the customer's Telegram chat.

    python -m bench.agent_reply_bench [--rates 10,25] [--seconds 10] [--tickets 300] [--runs 3]
                                      [--backends sqlite,postgres]

The real `careline serve` with Slack and Telegram switched on, against the contract-checking
fakes of both platforms (subprocesses). As deployed (k8s/): on PostgreSQL a web process and
a relay process (`--role web`, `--role relay`); on SQLite one process with both roles. Each
ticket belongs to a Telegram customer and has its thread in the desk channel. The loader
posts signed Events API `message` events, an agent's reply in a ticket's thread, at a fixed
rate (open loop), each to the next ticket in turn so that no chat is written to more often
than Telegram's one message a second allows. A reply's time runs from the POST to
`/slack/events` to the moment the fake Bot API receives the `sendMessage` carrying it: the
whole server side (the signed webhook, the inbox, the ticket's message and outbox row, the
relay and its pacing, the Bot API call).

The loader posts the agents' messages straight to Careline, so the fake Slack never saw
them: the desk's confirmation (a reaction on the agent's message) fails as
`message_not_found`, in its own lane, which never holds up the customer's.

Telegram's limits stay on (30 messages/s per bot, 1/s per chat): they are part of the path.
Each figure is the median of `--runs` runs; every reply must arrive exactly once. PostgreSQL
runs with its durable defaults (fsync, synchronous_commit, full_page_writes on). Goal
(issue 18): p95 <= 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import insert, update

from core import services
from core.db import tables as t
from core.db.database import Database
from core.db.migrate import migrate
from core.model import Channel, Priority, utcnow
from resilience.fuzz import SLACK_SECRET, SLACK_TOKEN
from resilience.harness import telegram_env
from resilience.procs import Fake, Processes, Server, start_fake, workspace
from tests.fakes.slack_events import SlackEvents
from tests.support.customers import register_customer
from tests.support.pgcluster import PgCluster, find_bindir

DESK = "C0DESK0001"
TEAM = "T0CARELINE"  # the team of SlackEvents' envelopes and of the fake's auth.test
AGENT_USER = "U0AGENT01"
FIRST_CHAT = 7_600_000_001
BACKENDS = {
    "sqlite": "SQLite",
    "postgres": "PostgreSQL (durable: fsync, synchronous_commit, full_page_writes on)",
}


@dataclass
class Sent:
    marker: str
    chat_id: int
    posted_at: float  # wall clock, as the fake records its calls
    status: int = 0


@dataclass
class Run:
    sent: list[Sent] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    missing: int = 0
    repeated: int = 0
    answer_ms: list[float] = field(default_factory=list)


async def seed(url: str, tickets: int) -> list[tuple[int, str]]:
    """Tickets of Telegram customers, each with its desk thread and assigned to the agent
    who will reply, with nothing left to relay."""
    db = Database(url)
    await migrate(db)
    threads: list[tuple[int, str]] = []
    try:
        async with db.uow() as uow:
            agent = await services.create_agent(
                uow,
                name="Ana Agent",
                email="ana@example.com",
                slack_user_id=AGENT_USER,
                capacity=tickets,
            )
            assert agent.id is not None
            for n in range(tickets):
                chat = FIRST_CHAT + n
                customer, identity = await register_customer(
                    uow,
                    channel=Channel.TELEGRAM,
                    external_id=str(chat),
                    chat_id=str(chat),
                    display_name="Bench",
                )
                assert customer.id is not None
                ticket = await services.open_ticket(
                    uow,
                    customer_id=customer.id,
                    description=f"bench complaint {n}",
                    category="billing",
                    priority=Priority.NORMAL,
                    channel=Channel.TELEGRAM,
                    identity_id=identity.id,
                )
                assert ticket.id is not None
                await services.assign_ticket(uow, ticket.id, agent.id)  # the agent's own
                threads.append((chat, f"1700000000.{n:06d}"))
                await uow.session.execute(
                    insert(t.slack_threads).values(
                        ticket_id=ticket.id,
                        team_id=TEAM,
                        channel_id=DESK,
                        thread_ts=threads[-1][1],
                        created_at=utcnow(),
                    )
                )
            await uow.commit()
        async with db.engine.begin() as conn:  # the seed's own notices are not the bench's
            await conn.execute(update(t.outbox).values(status="done"))
    finally:
        await db.dispose()
    return threads


async def load(
    events: SlackEvents,
    server: str,
    threads: list[tuple[int, str]],
    rate: float,
    seconds: float,
    label: str,
    first: int = 0,
) -> Run:
    run = Run()
    count = int(rate * seconds)
    start = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:

        async def post(i: int) -> None:
            chat, thread_ts = threads[(first + i) % len(threads)]
            marker = f"bench reply {label}-{i}"
            body = events.body(events.thread_reply(DESK, thread_ts, marker, user=AGENT_USER))
            sent = Sent(marker, chat, time.time())
            run.sent.append(sent)
            asked = time.perf_counter()
            answer = await client.post(
                f"{server}/slack/events", content=body, headers=events.sign(body)
            )
            run.answer_ms.append((time.perf_counter() - asked) * 1000)
            sent.status = answer.status_code

        tasks = []
        for i in range(count):  # open loop: the next request leaves on time, answered or not
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(post(i)))
        await asyncio.gather(*tasks)
    return run


async def arrived(run: Run, telegram: Fake, within: float = 30.0) -> None:
    """Wait until every reply reached the fake (or `within` seconds passed)."""
    deadline = time.monotonic() + within
    wanted = {s.marker for s in run.sent}
    while time.monotonic() < deadline:
        calls = await asyncio.to_thread(telegram.calls)
        seen = {str(c["params"].get("text", "")).rpartition(": ")[2] for c in calls}
        if wanted <= seen:
            return
        await asyncio.sleep(0.5)


def score(run: Run, calls: list[dict[str, object]]) -> None:
    arrivals: dict[str, list[float]] = {}
    for call in calls:
        if call.get("method") != "sendMessage" or call.get("status") != 200:
            continue
        text = str((call.get("params") or {}).get("text", ""))  # type: ignore[union-attr]
        marker = text.rpartition(": ")[2]  # "Ana Agent: bench reply ..."
        arrivals.setdefault(marker, []).append(float(call["at"]))  # type: ignore[arg-type]
    for sent in run.sent:
        times = arrivals.get(sent.marker, [])
        if not times:
            run.missing += 1
            continue
        run.repeated += len(times) - 1
        run.latencies_ms.append((min(times) - sent.posted_at) * 1000)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@contextmanager
def database(backend: str, workdir_url: str) -> Iterator[str]:
    if backend == "sqlite":
        yield workdir_url
        return
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL server binaries (initdb, pg_ctl) are needed for --backends postgres")
    cluster = PgCluster(bindir, durable=True)
    cluster.start()
    try:
        yield cluster.url()
    finally:
        cluster.destroy()


async def measure(backend: str, args: argparse.Namespace) -> dict[float, list[Run]]:
    results: dict[float, list[Run]] = {rate: [] for rate in args.rates}
    for run_no in range(args.runs):
        procs = Processes()
        with workspace() as workdir:
            sqlite_url = f"sqlite+aiosqlite:///{workdir / 'careline.db'}"
            with database(backend, sqlite_url) as url:
                try:
                    threads = await seed(url, args.tickets)
                    telegram = start_fake(procs, "tests.fakes.telegram_api", workdir)
                    slack = start_fake(procs, "tests.fakes.slack_api", workdir)
                    env = telegram_env(
                        url,
                        telegram,
                        workdir,
                        SLACK_BOT_TOKEN=SLACK_TOKEN,
                        SLACK_SIGNING_SECRET=SLACK_SECRET,
                        SLACK_API_URL=f"{slack.url}/api/",
                        CARELINE_SLACK_SUPPORT_CHANNEL=DESK,
                    )
                    # As deployed (k8s/): on PostgreSQL a web and a relay process; SQLite
                    # serves one process, both roles.
                    roles = ["web", "relay"] if backend == "postgres" else ["all"]
                    servers = [Server(procs, env, workdir, role=role) for role in roles]
                    for server in servers:
                        server.start()
                    for server in servers:
                        await asyncio.to_thread(server.wait_ready)
                    server = servers[0]
                    # Warm-up: the first requests pay for imports and connections.
                    # One signer for the run: Slack's event ids are unique, and a repeated
                    # one is a redelivery that Careline rightly ignores.
                    events = SlackEvents(signing_secret=SLACK_SECRET)
                    warm = await load(events, server.url, threads, 5, 1, f"warm{run_no}")
                    first = len(warm.sent)  # round robin on: no chat twice within a second
                    for rate in args.rates:
                        label = f"{backend}-{run_no}-{rate:g}"
                        run = await load(
                            events, server.url, threads, rate, args.seconds, label, first
                        )
                        first += len(run.sent)
                        await arrived(run, telegram)
                        score(run, await asyncio.to_thread(telegram.calls))
                        results[rate].append(run)
                        report_run(backend, rate, run_no, run)
                    for server in servers:
                        server.stop()
                finally:
                    procs.close()
    return results


def report_run(backend: str, rate: float, run_no: int, run: Run) -> None:
    refused = sum(1 for s in run.sent if s.status != 200)
    print(
        f"  {backend} run {run_no + 1} at {rate:g}/s: {len(run.sent)} replies, "
        f"p50 {percentile(run.latencies_ms, 0.5):.0f} ms, "
        f"p95 {percentile(run.latencies_ms, 0.95):.0f} ms, "
        f"max {max(run.latencies_ms, default=float('nan')):.0f} ms; "
        f"{run.missing} missing, {run.repeated} repeated, {refused} webhooks not 200",
        flush=True,
    )


def summary(backend: str, results: dict[float, list[Run]]) -> list[str]:
    lines = []
    for rate, runs in results.items():

        def median(q: float, runs: list[Run] = runs) -> float:
            return statistics.median(percentile(r.latencies_ms, q) for r in runs)

        answer = statistics.median(percentile(r.answer_ms, 0.95) for r in runs)
        missing = sum(r.missing for r in runs)
        repeated = sum(r.repeated for r in runs)
        verdict = "meets" if median(0.95) <= 150 else "misses"
        lines.append(
            f"| {BACKENDS[backend]} | {rate:g}/s | {median(0.5):.0f} ms | {median(0.95):.0f} ms "
            f"({verdict} 150 ms) | {answer:.0f} ms | {missing} | {repeated} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10,25", help="agent replies per second, e.g. 10,25")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    lines = [
        "| database | agent replies | p50 | p95 | webhook answer p95 | missing | repeated |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend in args.backends.split(","):
        lines += summary(backend, asyncio.run(measure(backend, args)))
    print(f"\nmedian of {args.runs} runs, {args.seconds:g} s per rate, {args.tickets} tickets:")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
