"""The relay carries out each (event, handler) once, retries each on its own, parks dead letters."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update

from bots.channels import PermanentFailure, RetryLater
from bots.relay import Delivery, Handler, Handlers, Relay, RetryPolicy, Skip
from core import services
from core.db import tables as t
from core.db.database import Database
from core.db.outbox import RelayLockHeld, SqliteRelayLock
from core.events import AgentReplied, TicketAssigned, TicketOpened
from core.model import Channel, utcnow
from tests.relay.support import deliveries, drain, outbox_rows, put_events
from tests.support.customers import register_customer

FAST = RetryPolicy(base_seconds=0.01, max_seconds=0.05, max_attempts=4)


def recorder(calls: Counter[str], provider: str = "p") -> Handler:
    async def handler(delivery: Delivery) -> str:
        calls[delivery.key] += 1
        return f"{provider}-{delivery.event_id}"

    return handler


async def test_each_registered_handler_runs_once_per_event_and_records_provider_id(
    db: Database,
) -> None:
    calls: Counter[str] = Counter()
    handlers = Handlers()
    handlers.add(TicketOpened, "chat", recorder(calls, "chat"))
    handlers.add(TicketOpened, "email", recorder(calls, "mail"))
    ids = await put_events(db, [TicketOpened(ticket_id=n) for n in range(1, 8)])
    ids += await put_events(db, [AgentReplied(ticket_id=1, message_id=5, agent_id=2)])
    relay = Relay(db, handlers, batch=3)
    await drain(relay)
    await drain(relay)  # a second pass finds nothing to repeat

    assert sorted(calls.values()) == [1] * 14
    recorded = await deliveries(db)
    assert len(recorded) == 14
    assert recorded[(ids[0], "email")]["status"] == "done"
    assert recorded[(ids[0], "email")]["provider_id"] == f"mail-{ids[0]}"
    rows = await outbox_rows(db)
    assert {r["status"] for r in rows.values()} == {"done"}  # AgentReplied: no handlers


async def test_handler_asked_to_retry_later_waits_then_succeeds_without_repeating_others(
    db: Database,
) -> None:
    calls: Counter[str] = Counter()
    tries: list[float] = []

    async def flaky(delivery: Delivery) -> str:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise RetryLater("429 too many requests", seconds=0.2)
        return "sent"

    handlers = Handlers()
    handlers.add(TicketOpened, "steady", recorder(calls))
    handlers.add(TicketOpened, "flaky", flaky)
    [event_id] = await put_events(db, [TicketOpened(ticket_id=1)])
    relay = Relay(db, handlers, retry=FAST, idle_seconds=0.05, poll_seconds=0.02)
    stop = asyncio.Event()
    runner = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(200):
            if (await outbox_rows(db))[event_id]["status"] == "done":
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await runner

    assert len(tries) == 3
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(tries))  # Retry-After
    assert calls == Counter({f"careline-{event_id}-steady": 1})
    recorded = await deliveries(db)
    assert recorded[(event_id, "flaky")]["status"] == "done"
    assert recorded[(event_id, "flaky")]["attempts"] == 3


async def test_permanent_failure_is_parked_as_dead_letter_with_the_reason(db: Database) -> None:
    async def rejected(delivery: Delivery) -> str:
        raise PermanentFailure("400 Bad Request: chat not found")

    calls: Counter[str] = Counter()
    handlers = Handlers()
    handlers.add(TicketOpened, "chat", rejected)
    handlers.add(TicketOpened, "email", recorder(calls))
    [event_id] = await put_events(db, [TicketOpened(ticket_id=1)])
    await drain(Relay(db, handlers, retry=FAST))

    recorded = await deliveries(db)
    assert recorded[(event_id, "chat")]["status"] == "dead"
    assert "chat not found" in recorded[(event_id, "chat")]["last_error"]
    assert recorded[(event_id, "email")]["status"] == "done"
    row = (await outbox_rows(db))[event_id]
    assert row["status"] == "dead"
    assert "chat: permanent failure: 400 Bad Request: chat not found" in row["last_error"]


async def test_handler_failing_every_time_is_dead_lettered_after_max_attempts(
    db: Database,
) -> None:
    attempts: list[int] = []

    async def broken(delivery: Delivery) -> str:
        attempts.append(delivery.attempt)
        raise RuntimeError("provider exploded")

    handlers = Handlers()
    handlers.add(TicketOpened, "chat", broken)
    [event_id] = await put_events(db, [TicketOpened(ticket_id=1)])
    relay = Relay(db, handlers, retry=FAST)
    for _ in range(40):
        await relay.drain_once()
        if (await outbox_rows(db))[event_id]["status"] == "dead":
            break
        await asyncio.sleep(0.03)

    assert attempts == [1, 2, 3, 4]
    recorded = (await deliveries(db))[(event_id, "chat")]
    assert recorded["status"] == "dead"
    assert "gave up after 4 attempts" in recorded["last_error"]
    assert "provider exploded" in recorded["last_error"]


async def test_dead_letter_retried_by_an_admin_is_delivered_again(db: Database) -> None:
    outcome = {"fail": True}
    calls: Counter[str] = Counter()

    async def sometimes(delivery: Delivery) -> str:
        calls[delivery.key] += 1
        if outcome["fail"]:
            raise PermanentFailure("bad address")
        return "ok"

    handlers = Handlers()
    handlers.add(TicketOpened, "email", sometimes)
    [event_id] = await put_events(db, [TicketOpened(ticket_id=1)])
    relay = Relay(db, handlers, retry=FAST)
    await drain(relay)
    assert (await deliveries(db))[(event_id, "email")]["status"] == "dead"

    # What the admin API's retry does (the relay contract in the team notes).
    outcome["fail"] = False
    now = utcnow()
    d, o = t.outbox_deliveries.c, t.outbox.c
    async with db.engine.begin() as conn:
        await conn.execute(
            update(t.outbox_deliveries)
            .where(d.event_id == event_id, d.handler == "email")
            .values(status="failed", next_attempt_at=now)
        )
        await conn.execute(
            update(t.outbox).where(o.id == event_id).values(status="pending", available_at=now)
        )
    await drain(relay)

    assert (await deliveries(db))[(event_id, "email")]["status"] == "done"
    assert (await outbox_rows(db))[event_id]["status"] == "done"
    assert calls[f"careline-{event_id}-email"] == 2


async def test_skipped_handler_is_recorded_and_not_retried(db: Database) -> None:
    async def nothing(delivery: Delivery) -> str:
        raise Skip("the customer has no verified email")

    handlers = Handlers()
    handlers.add(TicketOpened, "email", nothing)
    [event_id] = await put_events(db, [TicketOpened(ticket_id=1)])
    await drain(Relay(db, handlers))

    recorded = (await deliveries(db))[(event_id, "email")]
    assert recorded["status"] == "skipped"
    assert recorded["last_error"] == "the customer has no verified email"
    assert (await outbox_rows(db))[event_id]["status"] == "done"


async def test_relay_killed_between_sending_and_done_repeats_only_the_message_in_flight(
    db: Database,
) -> None:
    calls: Counter[str] = Counter()
    in_flight = asyncio.Event()
    stuck_ticket = 3

    async def send(delivery: Delivery) -> str:
        calls[delivery.key] += 1
        if delivery.payload["ticket_id"] == stuck_ticket and calls[delivery.key] == 1:
            in_flight.set()
            await asyncio.sleep(3600)  # the process dies here, mid-send
        return "sent"

    handlers = Handlers()
    handlers.add(TicketOpened, "chat", send)
    ids = await put_events(db, [TicketOpened(ticket_id=n) for n in range(1, 7)])
    lease = timedelta(seconds=0.3)
    first = Relay(db, handlers, lease=lease, poll_seconds=0.02, idle_seconds=0.05)
    crashed = asyncio.create_task(first.run(asyncio.Event()))
    await asyncio.wait_for(in_flight.wait(), 5)
    for _ in range(100):  # the others' `done` is committed (group commit)
        done = [r for r in (await deliveries(db)).values() if r["status"] == "done"]
        if len(done) == 5:
            break
        await asyncio.sleep(0.02)
    crashed.cancel()  # the crash: nothing more gets written
    with pytest.raises(asyncio.CancelledError):
        await crashed
    stuck_key = f"careline-{ids[stuck_ticket - 1]}-chat"
    assert (await deliveries(db))[(ids[stuck_ticket - 1], "chat")]["status"] == "sending"

    await asyncio.sleep(lease.total_seconds() + 0.05)
    second = Relay(db, handlers, lease=lease)
    await drain(second)

    assert calls[stuck_key] == 2  # the one in flight is repeated once
    assert all(n == 1 for key, n in calls.items() if key != stuck_key)
    assert len(calls) == 6
    assert {r["status"] for r in (await outbox_rows(db)).values()} == {"done"}


async def test_rows_about_one_ticket_go_out_in_order(db: Database) -> None:
    seen: list[int] = []

    async def send(delivery: Delivery) -> str:
        # The first one is slow; a relay that ignored order would send the second first.
        if delivery.payload["message_id"] == 1:
            await asyncio.sleep(0.1)
        seen.append(delivery.payload["message_id"])
        return "sent"

    handlers = Handlers()
    handlers.add(AgentReplied, "chat", send)
    await put_events(db, [AgentReplied(ticket_id=9, message_id=m, agent_id=1) for m in (1, 2, 3)])
    await drain(Relay(db, handlers))
    assert seen == [1, 2, 3]


async def test_a_paced_lane_does_not_hold_up_the_customers_chat(db: Database) -> None:
    """The desk's Slack updates of a ticket wait for Slack; the agent's reply to the same
    ticket's customer goes out meanwhile, and each lane keeps its own order."""
    desk_free = asyncio.Event()
    seen: list[str] = []

    def handler(name: str, wait: asyncio.Event | None = None) -> Handler:
        async def run(delivery: Delivery) -> str:
            if wait is not None:
                await wait.wait()
            seen.append(f"{name}:{delivery.event_type}")
            if name == "agent_reply_chat":
                desk_free.set()  # only once the reply went out does Slack allow the desk
            return "sent"

        return run

    handlers = Handlers()
    handlers.add(TicketAssigned, "slack.note_change", handler("slack.note_change", desk_free))
    handlers.add(TicketAssigned, "customer_chat", handler("customer_chat"))
    handlers.add(AgentReplied, "slack.confirm_reply", handler("slack.confirm_reply"))
    handlers.add(AgentReplied, "agent_reply_chat", handler("agent_reply_chat"),
                 lane="customer_chat")  # fmt: skip
    await put_events(
        db,
        [
            TicketAssigned(ticket_id=4, agent_id=1),
            AgentReplied(ticket_id=4, message_id=1, agent_id=1),
        ],
    )
    await asyncio.wait_for(drain(Relay(db, handlers)), 10)
    assert seen == [
        "customer_chat:TicketAssigned",  # the customer's lane, in the ticket's order
        "agent_reply_chat:AgentReplied",
        "slack.note_change:TicketAssigned",  # the desk's lane, in the ticket's order
        "slack.confirm_reply:AgentReplied",
    ]


def test_one_handler_name_lives_in_one_lane() -> None:
    handlers = Handlers()
    handlers.add(TicketOpened, "agent_reply_chat", recorder(Counter()), lane="customer_chat")
    with pytest.raises(ValueError, match="lane"):
        handlers.add(AgentReplied, "agent_reply_chat", recorder(Counter()), lane="other")
    assert handlers.lane("agent_reply_chat") == "customer_chat"
    handlers.add(TicketOpened, "slack.open_thread", recorder(Counter()))
    assert handlers.lane("slack.open_thread") == "slack"


async def test_a_throttled_chat_does_not_hold_up_other_chats(db: Database) -> None:
    sent_at: dict[int, float] = {}

    async def paced(delivery: Delivery) -> str:
        if delivery.payload["ticket_id"] == 1:  # the adapter paces this chat
            await asyncio.sleep(1.0)
        sent_at[delivery.payload["ticket_id"]] = time.monotonic()
        return "sent"

    handlers = Handlers()
    handlers.add(TicketOpened, "chat", paced)
    await put_events(db, [TicketOpened(ticket_id=n) for n in range(1, 21)])
    stop = asyncio.Event()
    relay = Relay(db, handlers, batch=5, poll_seconds=0.02)
    started = time.monotonic()
    runner = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(200):
            if len(sent_at) == 19:
                break
            await asyncio.sleep(0.01)
        others_done = time.monotonic() - started
    finally:
        stop.set()
        await runner
    assert others_done < 0.8
    assert 1 in sent_at  # the paced chat still went out before the relay stopped


async def test_relay_picks_up_a_commit_promptly(db: Database) -> None:
    picked: list[float] = []

    async def note(delivery: Delivery) -> str:
        picked.append(time.monotonic())
        return "ok"

    handlers = Handlers()
    handlers.add(TicketOpened, "chat", note)
    # Polling alone would take idle_seconds on PostgreSQL: only NOTIFY makes it prompt there.
    relay = Relay(db, handlers, poll_seconds=0.05, idle_seconds=5.0)
    stop = asyncio.Event()
    runner = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.3)  # listening
        latencies = []
        for n in range(5):
            committed = time.monotonic()
            await put_events(db, [TicketOpened(ticket_id=n + 1)])
            for _ in range(300):
                if len(picked) > n:
                    break
                await asyncio.sleep(0.005)
            latencies.append(picked[n] - committed)
    finally:
        stop.set()
        await runner
    assert max(latencies) < 0.5
    assert sorted(latencies)[2] < 0.15


def test_a_second_relay_process_on_one_sqlite_file_is_refused(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "careline.db"
    first, second = SqliteRelayLock(path), SqliteRelayLock(path)
    first.acquire()
    try:
        with pytest.raises(RelayLockHeld):
            second.acquire()
    finally:
        first.release()
    second.acquire()
    second.release()


@pytest.mark.postgres
async def test_four_relays_on_postgres_deliver_each_row_exactly_once(pg_db: Database) -> None:
    calls: Counter[str] = Counter()
    per_relay: Counter[int] = Counter()

    def registry(index: int) -> Handlers:
        async def send(delivery: Delivery) -> str:
            calls[delivery.key] += 1
            per_relay[index] += 1
            await asyncio.sleep(0.001)
            return "sent"

        handlers = Handlers()
        handlers.add(TicketOpened, "chat", send)
        handlers.add(TicketOpened, "email", send)
        return handlers

    total = 600
    stop = asyncio.Event()
    relays = [Relay(pg_db, registry(i), batch=20, idle_seconds=0.1) for i in range(4)]
    runners = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        for start in range(0, total, 100):  # committed while the relays run
            await put_events(pg_db, [TicketOpened(ticket_id=n) for n in range(start, start + 100)])
        for _ in range(500):
            rows = await outbox_rows(pg_db)
            if len(rows) == total and all(r["status"] == "done" for r in rows.values()):
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*runners)

    assert len(calls) == 2 * total
    assert set(calls.values()) == {1}
    workers = {r["locked_by"] for r in (await outbox_rows(pg_db)).values()}
    assert workers == {None}
    assert len(per_relay) == 4  # all four took part


async def test_a_commit_in_the_same_process_wakes_the_relay_at_once(db: Database) -> None:
    """No waiting for the next poll: SQLite has no NOTIFY, and the web and the relay share
    a process in the embedded default."""
    opened = asyncio.Event()

    async def tell(delivery: Delivery) -> str:
        opened.set()
        return "sent"

    handlers = Handlers()
    handlers.add(TicketOpened, "chat", tell)
    stop = asyncio.Event()
    relay = Relay(db, handlers, poll_seconds=60, idle_seconds=60)
    runner = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.3)  # the relay found nothing and waits
        async with db.uow() as uow:
            customer, identity = await register_customer(
                uow, channel=Channel.WEBCHAT, external_id="v-wake", chat_id="v-wake"
            )
            assert customer.id is not None
            await services.open_ticket(
                uow, customer_id=customer.id, description="It broke", category="other",
                identity_id=identity.id,
            )  # fmt: skip
            await uow.commit()
        await asyncio.wait_for(opened.wait(), 5)
    finally:
        stop.set()
        await runner
