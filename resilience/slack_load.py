"""2. Slack redeliveries: every Events API event delivered 1 to 4 times has exactly one effect.

Slack retries an event (`X-Slack-Retry-Num` 1..3) when it did not see a 2xx within 3 s, so
copies can overlap the first delivery's processing. Customers write to the bot in DMs: each
first asks for a person (a ticket opens), then writes notes, each note delivered 1-4 times.
Afterwards every note must be on the ticket exactly once, and answered exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.db.database import Database
from resilience.fuzz import SLACK_SECRET, SLACK_TOKEN, slack_mounted
from resilience.harness import (
    Context,
    check_relay,
    message_counts,
    telegram_env,
    tickets_of,
    wait_until,
)
from resilience.procs import Server, start_fake
from resilience.report import Result
from tests.fakes.slack_events import SlackEvents


@dataclass
class Copies:
    text: str
    copies: int
    statuses: list[str] = field(default_factory=list)


async def _post(client: httpx.AsyncClient, url: str, events: SlackEvents, body: bytes, retry: int):
    headers = events.sign(body, retry_num=retry or None)
    for _ in range(20):  # bounded: a transport error is retried like Slack would
        try:
            return str((await client.post(url, content=body, headers=headers)).status_code)
        except httpx.TransportError:
            await asyncio.sleep(0.2)
    return "unreachable"


async def slack_redeliveries(ctx: Context) -> list[Result]:
    size = ctx.size
    customers = max(2, size.slack_events // 10)
    per_customer = max(1, size.slack_events // customers)
    result = Result(
        "Slack events delivered 1-4 times",
        load=f"{customers * per_customer} events / {customers} DMs",
        faults="X-Slack-Retry-Num 1..3, overlapping",
    )
    workdir = ctx.folder("slack")
    telegram = start_fake(ctx.procs, "tests.fakes.telegram_api", workdir)
    slack = start_fake(ctx.procs, "tests.fakes.slack_api", workdir)
    url = ctx.sqlite_url("slack")
    env = telegram_env(
        url,
        telegram,
        workdir,
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        SLACK_SIGNING_SECRET=SLACK_SECRET,
        SLACK_API_URL=f"{slack.url}/api/",
        CARELINE_SLACK_SUPPORT_CHANNEL="C0DESK0001",
    )
    server = Server(ctx.procs, env, workdir)
    server.start()
    await asyncio.to_thread(server.wait_ready)
    if not await asyncio.to_thread(slack_mounted, server.url):
        server.stop()
        return [result.unavailable("the server does not mount /slack/events")]

    rng = random.Random(ctx.seed)
    events = SlackEvents(signing_secret=SLACK_SECRET)
    endpoint = f"{server.url}/slack/events"
    db = Database(url)
    sent: list[Copies] = []
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=60) as client:

            async def customer(n: int) -> None:
                user, channel = f"U9{n:08d}", f"D9{n:08d}"
                opening = events.body(events.direct_message("I need a person", user, channel))
                await _post(client, endpoint, events, opening, 0)

                async def has_ticket() -> bool:
                    return await tickets_of(db, "slack", user) > 0

                if not await wait_until(has_ticket, 90, every=0.2):
                    result.fail(f"{user}: no ticket opened")
                    return
                for j in range(per_customer):
                    note = Copies(f"note slack {n}-{j}", rng.randint(1, 4))
                    sent.append(note)
                    body = events.body(events.direct_message(note.text, user, channel))
                    for retry in range(note.copies):
                        if retry:  # a redelivery, sometimes while the first still runs
                            await asyncio.sleep(rng.uniform(0, 0.4))
                        note.statuses.append(await _post(client, endpoint, events, body, retry))

            await asyncio.gather(*(customer(n) for n in range(customers)))

            async def counts() -> dict[str, int]:
                return await message_counts(db, "note slack ")

            async def all_arrived() -> bool:
                return len(await counts()) >= len(sent)

            await wait_until(all_arrived, 60, every=0.5)
            found = await counts()
    finally:
        await db.dispose()
    elapsed = time.monotonic() - started
    copies = sum(n.copies for n in sent)
    for note in sent:
        count = found.get(note.text, 0)
        if count == 0:
            result.lost += 1
            result.notes.append(f"lost: {note.text!r} ({note.copies} copies, {note.statuses})")
        elif count > 1:
            result.duplicated += 1
            result.notes.append(f"duplicated x{count}: {note.text!r} ({note.copies} copies)")
    not_acked = sum(1 for n in sent for s in n.statuses if not s.startswith("2"))
    if not_acked:
        result.notes.append(f"{not_acked} deliveries not acknowledged with 2xx")

    def answers() -> list[dict[str, Any]]:
        posted = [c for c in slack.calls() if c.get("method") == "chat.postMessage"]
        return [
            c
            for c in posted
            if str((c.get("params") or {}).get("channel", "")).startswith("D9")  # the DMs
            and "Added to" in str((c.get("params") or {}).get("text"))
        ]

    # Answers in a DM are paced (about one message a second per channel): let them drain.
    await wait_until(lambda: len(answers()) >= len(sent), 120, every=1.0)
    replies = await asyncio.to_thread(answers)
    if len(replies) != len(sent):
        result.fail(f"{len(replies)} 'Added to' answers in DMs for {len(sent)} notes")
    result.notes.append(
        f"{len(sent)} notes as {copies} deliveries in {elapsed:.0f} s; {len(replies)} answers"
    )
    # The desk mirrors every note into the one support channel, paced at about one
    # message a second there (Slack's per-channel limit): give it that long to drain.
    await check_relay(result, server, url, within=60 + 1.5 * len(sent))
    server.stop()
    return [result]
