"""The scenarios: each starts what it needs, drives it, and returns its `Result`s."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator

from resilience.faults import platform_faults
from resilience.fuzz import fuzzed_input
from resilience.harness import (
    Context,
    assign_as_opened,
    check_relay,
    supervised,
    telegram_env,
    wait_until,
)
from resilience.procs import SECRET, TOKEN, Server, start_fake
from resilience.report import Result
from resilience.slack_load import slack_redeliveries
from resilience.sms_load import sms_redeliveries
from resilience.telegram_load import Load, Verdict, judge, plan, read_effects
from tests.support.pgcluster import PgCluster, find_bindir

RESTART_SECONDS = 45.0  # a restart on a busy two-core machine: up to ~30 s, and catching up
TURNS_PER_SECOND = 10.0  # the slowest rate seen on a busy two-core machine is 15-50 turns/s
RELAY_LEASE_SECONDS = 60.0  # bots/relay/: a notice in flight at a kill goes again after it


def load_deadline(updates: int, interruptions: int) -> float:
    """What a load of this size may take at worst: its turns, plus each restart, plus slack."""
    return 60.0 + updates / TURNS_PER_SECOND + interruptions * RESTART_SECONDS


def relay_deadline(updates: int) -> float:
    """Notices in flight at a kill go out again once their lease ran out."""
    return RELAY_LEASE_SECONDS + 30.0 + updates / 100


def score(result: Result, verdict: Verdict, load: Load) -> None:
    """Exactly one effect per update; every reply and notice out, each exactly once.

    Every repeat counts as duplicated. A repeat of a message sent at the instant of an
    interruption, before its record was written, is the design's at-least-once bound: it is
    counted as duplicated and, separately, as in flight, and only such repeats may pass
    (docs/resilience.md, "The bound").
    """
    result.lost += verdict.lost
    result.duplicated += verdict.duplicated + verdict.repeats
    result.in_flight += verdict.in_flight
    if load.gave_up:
        result.fail(f"{len(load.gave_up)} updates never acknowledged with 2xx")
    if verdict.replies_missing:
        result.lost += verdict.replies_missing
        result.fail(f"{verdict.replies_missing} updates' replies never delivered")
    missing_notices = verdict.notices_done - verdict.notices_delivered
    if missing_notices:
        result.lost += missing_notices
        result.fail(f"{missing_notices} notices recorded as sent but never received")
    calls = ", ".join(f"{k} x{n}" for k, n in sorted(verdict.calls.items()))
    result.notes.append(
        f"replies: {verdict.replies_expected} owed, {verdict.replies_missing} missing, "
        f"{verdict.replies_duplicated} repeated; chat notices: {verdict.notices} "
        f"({verdict.notices_delivered} seen), {verdict.notices_duplicated} repeated; "
        f"{verdict.unattributed_sends} unasked sends; {verdict.in_flight} repeats in flight "
        f"at an interruption; {verdict.parked} updates parked; Bot API calls: {calls or 'none'}"
    )
    failed_calls = sum(n for k, n in verdict.calls.items() if not k.endswith(" 200"))
    if failed_calls:
        result.fail(f"{failed_calls} Bot API calls refused by the fake (see the calls above)")
    result.notes += verdict.examples


def expect_notices(result: Result, verdict: Verdict, assigned: int) -> None:
    """Each ticket an agent took owes its customer one chat notice, under the same faults."""
    result.notes.append(f"tickets assigned during the load: {assigned}")
    if assigned == 0:
        result.fail("no ticket was assigned, so no chat notice was tested")
    elif verdict.notices < assigned:
        result.lost += assigned - verdict.notices
        result.fail(f"{assigned} tickets assigned but only {verdict.notices} chat notices")


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
    deadline = load_deadline(size.updates, size.kills)
    load = Load(
        f"{server.url}/telegram/webhook",
        SECRET,
        conversations,
        f"{fake.url}/bot{TOKEN}",
        deadline_seconds=deadline,
    )
    low, high = int(size.updates * 0.05), int(size.updates * 0.9)
    thresholds = sorted(rng.sample(range(low, high), size.kills)) if high > low else []
    recoveries: list[float] = []
    kills: list[tuple[float, float]] = []  # wall-clock, as the fake records its calls

    async def killer() -> None:
        for threshold in thresholds:
            if not await wait_until(lambda th=threshold: load.acked >= th, deadline):
                return
            await asyncio.sleep(rng.uniform(0, 0.3))  # a random moment, mid-request
            server.kill9()
            kills.append((time.time(), time.time()))
            killed = time.monotonic()
            server.start()
            await asyncio.to_thread(server.wait_ready)
            if await wait_until(lambda k=killed: load.last_ack_at > k, RESTART_SECONDS):
                recoveries.append(load.last_ack_at - killed)

    started = time.monotonic()
    killing = asyncio.create_task(killer())
    loaded = asyncio.Event()
    assigning = asyncio.create_task(assign_as_opened(url, loaded.is_set))
    try:
        await load.run()
    finally:
        killing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await killing
        loaded.set()
    assigned = await assigning
    elapsed = time.monotonic() - started
    if not server.alive():  # killed after the last update: bring it back for the relay
        server.start()
        await asyncio.to_thread(server.wait_ready)
    # A load that gave up has failed already: do not wait for its notices as well.
    await check_relay(
        result, server, url, within=5 if load.gave_up else relay_deadline(size.updates)
    )
    effects = await read_effects(url, conversations)
    verdict = judge(conversations, effects, await asyncio.to_thread(fake.calls), kills)
    server.stop()

    result.recover_seconds = max(recoveries) if recoveries else None
    expect_notices(result, verdict, assigned)
    rate = verdict.updates / elapsed if elapsed else 0.0
    result.notes.append(
        f"{verdict.updates} updates in {elapsed:.0f} s ({rate:.0f}/s), {server.starts - 1} restarts"
    )
    score(result, verdict, load)
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
    deadline = load_deadline(size.pg_updates, 1)
    load = Load(
        f"{server.url}/telegram/webhook",
        SECRET,
        conversations,
        f"{fake.url}/bot{TOKEN}",
        deadline_seconds=deadline,
        on_answer=lambda status, asked, at: answers.append((status, asked, at)),
    )
    window: dict[str, float] = {}
    wall: dict[str, float] = {}  # the same moments in wall-clock time, as the fake records

    async def outage_at_a_third() -> None:
        if not await wait_until(lambda: load.acked >= size.pg_updates // 3, deadline):
            return
        wall["down"] = time.time()
        await asyncio.to_thread(cluster.stop)
        window["down"] = time.monotonic()
        await asyncio.sleep(outage)
        window["restarting"] = time.monotonic()
        await asyncio.to_thread(cluster.restart_server)
        window["up"] = time.monotonic()
        wall["up"] = time.time()

    outage_task = asyncio.create_task(outage_at_a_third())
    loaded = asyncio.Event()
    assigning = asyncio.create_task(assign_as_opened(url, loaded.is_set))
    try:
        await load.run()
    finally:
        if "down" not in wall:  # the load ended first: the outage must not wait any longer
            outage_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await outage_task
        loaded.set()
    assigned = await assigning
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
    await check_relay(result, server, url, within=relay_deadline(size.pg_updates))
    effects = await read_effects(url, conversations)
    calls = await asyncio.to_thread(fake.calls)
    verdict = judge(conversations, effects, calls, [(wall["down"], wall["up"])])
    server.stop()
    expect_notices(result, verdict, assigned)
    score(result, verdict, load)
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
    "sms": sms_redeliveries,
    "faults": platform_faults,
    "fuzz": fuzzed_input,
}


async def run_scenario(name: str, ctx: Context) -> list[Result]:
    """One scenario, stopped at once (raising `Broken`) if a fake or the server breaks."""
    return await supervised(ctx.procs, SCENARIOS[name](ctx))
