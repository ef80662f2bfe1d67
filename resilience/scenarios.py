"""The scenarios: each starts what it needs, drives it, and returns its `Result`s."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator

from resilience.faults import platform_faults
from resilience.fuzz import fuzzed_input
from resilience.harness import Context, check_relay, telegram_env, wait_until
from resilience.procs import SECRET, Server, start_fake
from resilience.report import Result
from resilience.slack_load import slack_redeliveries
from resilience.telegram_load import Load, Verdict, judge, plan, read_effects
from tests.support.pgcluster import PgCluster, find_bindir

SMALL_RUN = 5_000  # messages; below this one repeat is already more than 0.1%


def score(result: Result, verdict: Verdict, load: Load, *, interruptions: int = 0) -> None:
    """Exactly one effect per update, every reply and notice out, duplicates <= 0.1%.

    A crash may repeat what was in flight at that moment (a reply already sent but not yet
    recorded); that is the design's at-least-once bound. So a small run (under SMALL_RUN
    messages, where one repeat is already over 0.1%) may have up to two repeats per
    interruption; the full run is held to 0.1% alone.
    """
    result.lost += verdict.lost
    result.duplicated += verdict.duplicated
    if load.gave_up:
        result.fail(f"{len(load.gave_up)} updates never acknowledged with 2xx")
    if verdict.replies_missing:
        result.lost += verdict.replies_missing
        result.fail(f"{verdict.replies_missing} updates' replies never delivered")
    missing_notices = verdict.notices_done - verdict.notices_delivered
    if missing_notices:
        result.lost += missing_notices
        result.fail(f"{missing_notices} notices recorded as sent but never received")
    extra = verdict.replies_duplicated + verdict.notices_duplicated + verdict.unattributed_sends
    share = extra / max(1, verdict.replies_expected + verdict.notices)
    result.notes.append(
        f"replies: {verdict.replies_expected} owed, {verdict.replies_missing} missing, "
        f"{verdict.replies_duplicated} duplicated; chat notices: {verdict.notices} "
        f"({verdict.notices_delivered} seen), {verdict.notices_duplicated} duplicated; "
        f"{verdict.unattributed_sends} other sends; duplicates {share:.2%} of messages; "
        f"{verdict.parked} updates parked"
    )
    messages = verdict.replies_expected + verdict.notices
    allowed = (
        0.001 * messages if messages >= SMALL_RUN else max(0.001 * messages, 2 * interruptions)
    )
    if extra > allowed:
        result.fail(
            f"duplicate messages to customers {share:.2%} > 0.1% "
            f"({extra} > {allowed:.0f} allowed for {interruptions} interruptions)"
        )
    result.notes += verdict.examples


# -- 1. kill -9 during inbound load ----------------------------------------------------------


async def crash_during_telegram_load(ctx: Context, *, database_url: str | None = None) -> Result:
    size = ctx.size
    name = "kill -9 under Telegram load" + (" (PostgreSQL)" if database_url else "")
    result = Result(
        name,
        load=f"{size.updates} updates / {size.chats} chats",
        faults=f"{size.kills} x kill -9",
    )
    workdir = ctx.folder("crash-pg" if database_url else "crash")
    fake = start_fake(ctx.procs, "tests.fakes.telegram_api", workdir)
    url = database_url or ctx.sqlite_url("crash")
    server = Server(ctx.procs, telegram_env(url, fake, workdir), workdir)
    server.start()
    await asyncio.to_thread(server.wait_ready)
    rng = random.Random(ctx.seed)
    conversations = plan(size.updates, size.chats)
    # A busy two-core machine does 15-50 turns/s, and each restart costs up to ~30 s.
    deadline = max(900.0, size.updates * 0.1 + size.kills * 60)
    load = Load(f"{server.url}/telegram/webhook", SECRET, conversations, deadline_seconds=deadline)
    low, high = int(size.updates * 0.05), int(size.updates * 0.9)
    thresholds = sorted(rng.sample(range(low, high), size.kills)) if high > low else []
    recoveries: list[float] = []

    async def killer() -> None:
        for threshold in thresholds:
            if not await wait_until(lambda th=threshold: load.acked >= th, 600):
                return
            await asyncio.sleep(rng.uniform(0, 0.3))  # a random moment, mid-request
            server.kill9()
            killed = time.monotonic()
            server.start()
            await asyncio.to_thread(server.wait_ready)
            if await wait_until(lambda k=killed: load.last_ack_at > k, 120):
                recoveries.append(load.last_ack_at - killed)

    started = time.monotonic()
    killing = asyncio.create_task(killer())
    try:
        await load.run()
    finally:
        killing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await killing
    elapsed = time.monotonic() - started
    if not server.alive():  # killed after the last update: bring it back for the relay
        server.start()
        await asyncio.to_thread(server.wait_ready)
    await check_relay(result, server, url, within=150)
    effects = await read_effects(url, conversations)
    verdict = judge(conversations, effects, await asyncio.to_thread(fake.calls))
    server.stop()

    result.recover_seconds = max(recoveries) if recoveries else None
    rate = verdict.updates / elapsed if elapsed else 0.0
    result.notes.append(
        f"{verdict.updates} updates in {elapsed:.0f} s ({rate:.0f}/s), {server.starts - 1} restarts"
    )
    score(result, verdict, load, interruptions=server.starts - 1)
    return result


# -- 4. PostgreSQL restarted mid-load -------------------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[PgCluster | None]:
    """A throwaway PostgreSQL cluster, or None when the machine has no server binaries."""
    bindir = find_bindir()
    if bindir is None:
        yield None
        return
    cluster = PgCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


async def postgres_restart_under_load(ctx: Context, cluster: PgCluster) -> Result:
    size = ctx.size
    outage = 3.0
    result = Result(
        "PostgreSQL restarted under load",
        load=f"{size.pg_updates} updates / {size.pg_chats} chats",
        faults=f"database down {outage:.0f} s",
    )
    workdir = ctx.folder("pg-restart")
    fake = start_fake(ctx.procs, "tests.fakes.telegram_api", workdir)
    url = cluster.url()
    server = Server(ctx.procs, telegram_env(url, fake, workdir), workdir)
    server.start()
    await asyncio.to_thread(server.wait_ready)
    conversations = plan(size.pg_updates, size.pg_chats, first_chat=7_200_000_001)
    answers: list[tuple[str, float, float]] = []
    load = Load(
        f"{server.url}/telegram/webhook",
        SECRET,
        conversations,
        on_answer=lambda status, asked, at: answers.append((status, asked, at)),
    )
    window: dict[str, float] = {}

    async def outage_at_a_third() -> None:
        if not await wait_until(lambda: load.acked >= size.pg_updates // 3, 600):
            return
        await asyncio.to_thread(cluster.stop)
        window["down"] = time.monotonic()
        await asyncio.sleep(outage)
        window["restarting"] = time.monotonic()
        await asyncio.to_thread(cluster.restart_server)
        window["up"] = time.monotonic()

    outage_task = asyncio.create_task(outage_at_a_third())
    try:
        await load.run()
    finally:
        await outage_task
    if "up" not in window:
        return result.unavailable("the load finished before the outage could start")
    # Requests made and answered while the database was down must all ask for a retry.
    down, back = window["down"], window["restarting"]
    during = [s for s, asked, at in answers if down <= asked and at <= back]
    acked_while_down = sum(1 for s in during if s.startswith("2"))
    summary = ", ".join(f"{s} x{during.count(s)}" for s in sorted(set(during)))
    result.notes.append(f"answers while down: {summary or 'none'}")
    if acked_while_down:
        result.fail(f"{acked_while_down} webhooks answered 2xx while the database was down")
    if not during:
        result.notes.append("no webhook answered while the database was down (load too small)")
    after = [at for s, _, at in answers if s.startswith("2") and at > window["up"]]
    result.recover_seconds = (min(after) - window["up"]) if after else None
    await check_relay(result, server, url, within=150)
    effects = await read_effects(url, conversations)
    verdict = judge(conversations, effects, await asyncio.to_thread(fake.calls))
    server.stop()
    score(result, verdict, load, interruptions=1)
    return result


async def _crash(ctx: Context) -> list[Result]:
    return [await crash_during_telegram_load(ctx)]


async def _crash_postgres(ctx: Context) -> list[Result]:
    with postgres() as cluster:
        if cluster is None:
            return [Result("kill -9 under Telegram load (PostgreSQL)").unavailable("no PostgreSQL")]
        return [await crash_during_telegram_load(ctx, database_url=cluster.url())]


async def _postgres_restart(ctx: Context) -> list[Result]:
    with postgres() as cluster:
        if cluster is None:
            return [Result("PostgreSQL restarted under load").unavailable("no PostgreSQL")]
        return [await postgres_restart_under_load(ctx, cluster)]


SCENARIOS: dict[str, Callable[[Context], Awaitable[list[Result]]]] = {
    "crash": _crash,
    "crash-postgres": _crash_postgres,
    "postgres-restart": _postgres_restart,
    "slack": slack_redeliveries,
    "faults": platform_faults,
    "fuzz": fuzzed_input,
}
